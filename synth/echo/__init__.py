"""ECG → echocardiogram video: readers (EchoNet-Dynamic, video folders), the ECG-paired phantom simulator, the video
tokenizer and the conditioning it adds to the core, and the ``synth echo`` generation pipeline.

Importing this package registers ``video_vq_autoencoder`` (network), ``video_vqvae`` (backbone) and ``echo_params``
(adapter); the masked-token prior is the core ``maskgit`` backbone with the core ``ecg`` adapter.
"""

from synth.echo import adapters, tokenizer  # noqa: F401  (registration)
