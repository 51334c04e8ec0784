"""The default class colours: Pascal VOC's colour map (also DeepLab's)."""


def voc_palette(num_classes: int) -> list:
  """`num_classes` RGB tuples: class i gets the bits of i spread over the
  high bits of R, G and B (0 -> black, 1 -> (128, 0, 0), 255 -> (224, 224, 192))."""
  colors = []
  for i in range(num_classes):
    rgb, c = [0, 0, 0], i
    for bit in range(7, -1, -1):
      for channel in range(3):
        rgb[channel] |= ((c >> channel) & 1) << bit
      c >>= 3
    colors.append(tuple(rgb))
  return colors
