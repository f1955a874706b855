"""SSAST (Gong et al., AAAI 2022): masked spectrogram patch modelling,
its masks and objectives, and its encoders read into an AST lobe."""
