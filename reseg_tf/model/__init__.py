"""The network: VGG-16 front end, ReNet layers (scan and fused sweeps), ReSeg."""
