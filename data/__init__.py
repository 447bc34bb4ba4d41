"""Data of both domains: reading, encoding, caching."""


def dataset_module(params):
    """The cache module of params.domain (prepare / load_split), imported lazily:
    both import TensorFlow."""
    if params.domain == "wave":
        from data import wave_dataset
        return wave_dataset
    from data import midi_dataset
    return midi_dataset
