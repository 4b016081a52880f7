"""Input and output: the input file schema (config), measured profiles, datasets and figures on disk."""
