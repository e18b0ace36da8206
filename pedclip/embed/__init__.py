"""Reader -> encoder -> writer pipeline that fills the embedding cache."""
