"""pedclip.data"""
