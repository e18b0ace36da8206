"""pedclip.dashboard"""
