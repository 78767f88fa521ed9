"""The HTML report renders every section, with real PNG plots embedded as base64."""

from __future__ import annotations

import base64
import io
from html.parser import HTMLParser

from tunewise.eval import evaluate_and_gate
from tunewise.eval.html_report import write_report


class _Images(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images: dict[str, str] = {}
        self.headings: list[str] = []
        self._in_h2 = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images[attrs["alt"]] = attrs["src"]
        self._in_h2 = tag == "h2"

    def handle_data(self, data):
        if self._in_h2:
            self.headings.append(data)
            self._in_h2 = False


def test_report_embeds_decodable_pngs_and_all_sections(lora_run, small_eval):
    import matplotlib.image

    section = {**small_eval, "forgetting": {"max_paragraphs": 2, "max_questions": 2},
               "gate": {"token_f1": ">= 0.9"}}
    run_dir = lora_run(eval_section=section)
    evaluate_and_gate(run_dir)
    path = write_report(run_dir)
    assert path == run_dir / "report.html"
    html = path.read_text()
    parser = _Images()
    parser.feed(html)
    assert parser.headings == ["Gate", "Metrics before and after", "Loss curves", "Forgetting check",
                               "Adapter spectrum", "Samples", "Data", "Spec"]
    assert {"loss curve", "adapter spectrum", "metrics before/after"} <= set(parser.images)
    for alt, src in parser.images.items():
        assert src.startswith("data:image/png;base64,"), alt
        png = base64.b64decode(src.split(",", 1)[1], validate=True)
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        pixels = matplotlib.image.imread(io.BytesIO(png), format="png")
        assert pixels.shape[0] > 100 and pixels.shape[1] > 100 and pixels.std() > 0  # a drawn image, not blank
    assert "Gate failed" in html and "token_f1" in html
    assert "http://" not in html.replace("http://www.w3.org", "")  # self-contained: nothing fetched


def test_report_of_an_unevaluated_run_says_so(lora_run, tmp_path):
    run_dir = lora_run()
    html = write_report(run_dir, tmp_path / "out.html").read_text()
    assert "Not evaluated yet" in html and "No gate verdict" in html
    assert 'alt="loss curve" src="data:image/png;base64,' in html
