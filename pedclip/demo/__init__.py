"""`pedclip demo`: the whole study offline on synthetic data, with two small models of the real architectures."""
