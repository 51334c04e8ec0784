r"""A demo page in the browser: segment an image or a short video with a trained ReSeg.

  pip install -e ".[demo]"
  python -m reseg_tf.demo                       # http://127.0.0.1:7860
  python -m reseg_tf.demo --model=runs/camvid --model=exports/camvid --port=8080

Drop or pick an image (or a short video, further down); choose a model among
the published ones (`models/`) and those named with --model (published
names, training runs' folders, exported SavedModels; the first is chosen
when the page opens). The page shows the image as segmented, the overlay and
the colour map side by side, a legend of the classes with the share of the
pixels each got, and the time the model took. Example images are on the
page from the start.

Safe by default: it listens on 127.0.0.1 only (--host to change that), takes
uploads of at most --max_upload_mb, downscales images larger than
--max_side (and refuses those of more than 50 MP), refuses videos of more
than --max_video_frames, loads only the models above, and reads and writes
no file but the uploads and its own temporary folder, removed when it stops.
A bad upload (not an image, empty, too large) gets a message on the page;
the server goes on serving. Built on Gradio (the `demo` extra); video needs
the `video` extra.
"""

import logging as std_logging
import os
import shutil
import signal
import sys
import tempfile

from absl import flags, logging

from reseg_tf import cli
from reseg_tf.common import extras
from reseg_tf.common.errors import InputError

_MODEL = flags.DEFINE_multi_string(
    "model", ["camvid_no_vgg_cycle4"], "A model to offer besides the published ones: "
    "a published model's name or folder, a training run's folder or an exported "
    "SavedModel (repeatable). The first is chosen when the page opens. Default: "
    "the best published CamVid model.")
_HOST = flags.DEFINE_string(
    "host", "127.0.0.1", "The address to listen on; 0.0.0.0 serves other machines "
    "too (anyone who reaches it can use the models).")
_PORT = flags.DEFINE_integer("port", 7860, "The port to listen on.")
_MAX_UPLOAD_MB = flags.DEFINE_integer("max_upload_mb", 20, "Largest upload, in MB.")
_MAX_SIDE = flags.DEFINE_integer(
    "max_side", 1024, "Images whose longer side is larger are downscaled to it "
    "before segmentation (the page says so).")
_MAX_VIDEO_FRAMES = flags.DEFINE_integer("max_video_frames", 300,
                                         "Videos with more frames are refused.")
_COMPUTE_DTYPE = flags.DEFINE_enum(
    "compute_dtype", None, ["float32", "bfloat16"], "Run the models' layers in this "
    "precision. Default: each model's own.")

_CSS = """
.reseg-legend { border-collapse: collapse; }
.reseg-legend td, .reseg-legend th { padding: 2px 8px; border: none; }
.reseg-swatch { display: inline-block; width: 1.4em; height: 1em;
                border: 1px solid #444; vertical-align: middle; }
.reseg-share { text-align: right; font-variant-numeric: tabular-nums; }
"""


def _gradio():
  return extras.require("gradio", "demo", "the demo page")


def _upload(payload):
  """`(path, original file name)` of an upload as the page sends it (a file's
  data, or a video's, which holds one), or None."""
  if isinstance(payload, dict) and isinstance(payload.get("video"), dict):
    payload = payload["video"]
  if not isinstance(payload, dict) or not payload.get("path"):
    return None
  return payload["path"], payload.get("orig_name") or os.path.basename(payload["path"])


def build_page(models, limits, work_dir: str, example_clip: str = None):
  """The Gradio page (a `gr.Blocks`) over `demo_backend`'s functions.

  Args:
    models: a `demo_backend.Models`.
    limits: a `demo_backend.Limits`.
    work_dir: where the segmented videos are written.
    example_clip: a video offered as an example, or None.
  """
  gr = _gradio()
  from reseg_tf.serving import demo_backend  # noqa: PLC0415 (loads TensorFlow)

  def _message(error: InputError):
    """The page's message for an expected problem: it stays until closed, and
    the server logs one line, not a traceback."""
    logging.warning("Refused %s", error)
    return gr.Error(str(error), duration=None, title="Cannot segment this",
                    print_exception=False)

  def on_image(payload, choice):
    upload = _upload(payload)
    if upload is None:
      return None, None, None, "", ""
    try:
      outcome = demo_backend.segment_image(models, choice, upload[0], limits, upload[1])
    except InputError as e:
      raise _message(e) from e
    result = outcome.result
    return (result.image, result.overlay(), result.color(), outcome.legend_html(),
            outcome.summary())

  def on_video(payload, choice, layout, progress=gr.Progress()):
    upload = _upload(payload)
    if upload is None:
      raise _message(InputError("video", "drop or pick a video first"))
    progress(0, desc="Segmenting frames")
    try:
      outcome = demo_backend.segment_video(
          models, choice, upload[0], work_dir, limits, layout=layout, name=upload[1],
          on_frames=lambda done, total: progress((done, total), unit="frames"))
    except InputError as e:
      raise _message(e) from e
    return outcome.report.output, outcome.summary()

  with gr.Blocks(title="ReSeg demo", analytics_enabled=False) as page:
    gr.Markdown("# ReSeg: semantic segmentation\nDrop or pick an image; the model "
                "colours each pixel with its class.")
    model = gr.Dropdown(models.choices, value=models.default, label="Model",
                        elem_id="model")
    with gr.Row():
      upload = gr.Image(type="filepath", sources=["upload"], label="Image",
                        elem_id="upload", height=300)
      with gr.Column():
        gr.Examples([[os.path.join(demo_backend.EXAMPLES_DIR, file), example_model]
                     for file, example_model in demo_backend.EXAMPLES
                     if example_model in models.choices],
                    inputs=[upload, model], label="Examples")
    with gr.Row(equal_height=True):
      shown = [gr.Image(label=label, format="png", interactive=False, elem_id=elem_id)
               for label, elem_id in (("Input (as segmented)", "input"),
                                      ("Overlay", "overlay"), ("Classes", "classes"))]
    with gr.Row():
      legend = gr.HTML(elem_id="legend")
      summary = gr.Markdown(elem_id="summary")
    image_outputs = [*shown, legend, summary]
    upload.change(on_image, [upload, model], image_outputs, preprocess=False)
    model.change(on_image, [upload, model], image_outputs, preprocess=False)

    gr.Markdown(f"## Video\nA short clip (at most {limits.max_video_frames} frames); "
                f"frames are segmented at {limits.max_video_side} pixels on their "
                "longer side at most.")
    with gr.Row():
      with gr.Column():
        clip = gr.Video(sources=["upload"], label="Video", elem_id="clip")
        layout = gr.Radio([("Blended", "blend"), ("Side by side", "side_by_side")],
                          value="blend", label="Layout")
        run = gr.Button("Segment the video", variant="primary", elem_id="run_video")
        if example_clip:
          gr.Examples([[example_clip]], inputs=[clip], label="Example clip")
      with gr.Column():
        clip_out = gr.Video(label="Segmented", interactive=False, elem_id="clip_out")
        clip_summary = gr.Markdown(elem_id="clip_summary")
    run.click(on_video, [clip, model, layout], [clip_out, clip_summary], preprocess=False)
  return page


def write_example_clip(path: str, frames: int = 12):
  """A short pan across the CamVid example image, as a video (for the page)."""
  import numpy as np  # noqa: PLC0415
  from PIL import Image  # noqa: PLC0415

  from reseg_tf.serving import demo_backend, video  # noqa: PLC0415
  with Image.open(os.path.join(demo_backend.EXAMPLES_DIR, demo_backend.EXAMPLES[0][0])) as im:
    image = np.asarray(im.convert("RGB"))
  height, width = 240, 320
  with video.VideoWriter(path, width, height, 6) as writer:
    for i in range(frames):
      x = round(i * (image.shape[1] - width) / max(frames - 1, 1))
      y = (image.shape[0] - height) // 2
      writer.write(np.ascontiguousarray(image[y:y + height, x:x + width]))


def main(argv):
  del argv
  # Stopped by a signal (kill, a service manager): still remove the folder.
  signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
  work_dir = tempfile.mkdtemp(prefix="reseg_demo_")
  # Gradio keeps uploads and the pictures it serves in GRADIO_TEMP_DIR: ours.
  os.environ["GRADIO_TEMP_DIR"] = work_dir
  os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
  # Gradio's HTTP client logs every request it makes to the server at start-up.
  std_logging.getLogger("httpx").setLevel(std_logging.WARNING)
  try:
    gr = _gradio()
    from reseg_tf.serving import demo_backend  # noqa: PLC0415
    limits = demo_backend.Limits(max_side=_MAX_SIDE.value,
                                 max_video_frames=_MAX_VIDEO_FRAMES.value)
    models = demo_backend.Models(_MODEL.value, compute_dtype=_COMPUTE_DTYPE.value)
    for given in dict.fromkeys(_MODEL.value):  # A bad --model fails now, not on the page.
      models.get(given)
    example_clip = os.path.join(work_dir, "example_pan.mp4")
    try:
      write_example_clip(example_clip)
    except InputError:  # No video extra: the page takes no video example.
      example_clip = None
    page = build_page(models, limits, work_dir, example_clip)
    page.queue(default_concurrency_limit=1).launch(
        server_name=_HOST.value, server_port=_PORT.value,
        max_file_size=_MAX_UPLOAD_MB.value * gr.FileSize.MB, show_error=True,
        css=_CSS, theme=gr.themes.Default(
            # System fonts: the page fetches nothing from other sites.
            font=["ui-sans-serif", "system-ui", "sans-serif"],
            font_mono=["ui-monospace", "monospace"]))
  finally:
    shutil.rmtree(work_dir, ignore_errors=True)


if __name__ == "__main__":
  cli.run(main)
