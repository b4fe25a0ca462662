"""The HTML of deltaprop explain in a real headless browser (Debian's chromium, driven by
Selenium through chromedriver, offline).

One browser for the module: every example page loads with no console error, its MathML is
laid out (fractions stacked, every formula with a size), no equation is wider than the
viewport at 1200 px, nothing overflows the page sideways, and the step mode advances with the
arrow keys and the buttons, highlighting in the neuron picture exactly the elements that the
current line names.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from explain_helpers import EXAMPLES

from deltaprop.explain import explain_file

NAMES = sorted(p.name for p in EXAMPLES.glob("*.toml"))
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
if CHROMIUM is None or CHROMEDRIVER is None:
    pytest.skip(
        "chromium and chromedriver are not installed (Debian: apt-get install chromium "
        "chromium-driver)",
        allow_module_level=True,
    )

from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402

WIDTH = 1200


@pytest.fixture(scope="module")
def browser():
    profile = tempfile.mkdtemp(prefix="deltaprop-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        f"--window-size={WIDTH},900",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # the driver's path is given, so Selenium Manager never tries to download one
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_window_size(WIDTH, 900)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def open_page(browser, tmp_path: Path, name: str, **options) -> None:
    page = tmp_path / (Path(name).stem + ".html")
    page.write_text(explain_file(EXAMPLES / name).to_html(**options), encoding="utf-8")
    browser.get_log("browser")  # drop messages of the previous page
    browser.get(page.as_uri())
    assert browser.execute_script("return document.readyState") == "complete"


def console_errors(browser) -> list[dict]:
    return [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]


@pytest.mark.parametrize("name", NAMES)
def test_page_loads_with_mathml_laid_out_and_nothing_too_wide(browser, tmp_path, name):
    open_page(browser, tmp_path, name)
    assert console_errors(browser) == []
    layout = browser.execute_script(
        """
        const doc = document.documentElement, vw = doc.clientWidth;
        const maths = Array.from(document.querySelectorAll('.eq math'));
        const empty = maths.filter(m => { const r = m.getBoundingClientRect();
                                          return !(r.width > 0 && r.height > 0); }).length;
        const wide = Array.from(document.querySelectorAll('.eq')).filter(e => {
            const r = e.getBoundingClientRect();
            return e.scrollWidth > e.clientWidth + 1 || r.right > vw + 0.5 || r.left < -0.5;
        }).map(e => e.textContent.slice(0, 60));
        const fracs = Array.from(document.querySelectorAll('mfrac')).map(f => {
            const [a, b] = f.children; const ra = a.getBoundingClientRect(),
                  rb = b.getBoundingClientRect();
            return ra.bottom <= rb.top + 1;  // numerator above denominator
        });
        return {vw: vw, page: doc.scrollWidth, maths: maths.length, empty: empty, wide: wide,
                fracs: fracs, display: maths.length ? getComputedStyle(maths[0]).display : ''};
        """
    )
    assert layout["vw"] <= WIDTH
    assert layout["maths"] > 0 and layout["empty"] == 0
    assert layout["display"].endswith("math")  # typeset by the browser's MathML engine
    assert layout["wide"] == [], layout["wide"]
    assert layout["page"] <= layout["vw"]  # nothing sticks out of the page sideways
    assert all(layout["fracs"])


def _state(browser) -> dict:
    return browser.execute_script(
        """
        const root = document.querySelector('.deltaprop-explain');
        const cur = root.querySelector('.dp-current');
        return {
            stepping: root.classList.contains('dp-stepping'),
            count: root.querySelector('.dp-count').textContent,
            refs: cur ? (cur.getAttribute('data-refs') || '') : null,
            text: cur ? cur.textContent : null,
            later: root.querySelectorAll('.dp-s.dp-later').length,
            hidden: Array.from(root.querySelectorAll('.dp-s.dp-later')).filter(
                e => e.getBoundingClientRect().height === 0).length,
            hl: Array.from(root.querySelectorAll('.hl')).map(e => e.getAttribute('data-ref')),
        };
        """
    )


def _steps(browser, limit: int):
    """Press the right arrow up to ``limit`` times, yielding the step state after each press."""
    body = browser.find_element(By.TAG_NAME, "body")
    for _ in range(limit):
        body.send_keys(Keys.ARROW_RIGHT)
        yield _state(browser)


def test_step_mode_with_arrow_keys_and_buttons(browser, tmp_path):
    open_page(browser, tmp_path, "mattmazur-2-2-2.toml")
    body = browser.find_element(By.TAG_NAME, "body")
    assert not _state(browser)["stepping"]
    body.send_keys(Keys.ARROW_RIGHT)
    s = _state(browser)
    assert s["stepping"] and s["count"].startswith("1 / ")
    total = int(s["count"].split(" / ")[1])
    assert s["later"] == total - 1 == s["hidden"]  # everything after the first line is hidden
    # advance to the first line of the derivation: net_h1 = ...
    for _ in range(total):
        body.send_keys(Keys.ARROW_RIGHT)
        s = _state(browser)
        if s["refs"]:
            break
    assert s["text"].startswith("net") and "0.3775" in s["text"]
    refs = set(s["refs"].split())
    # net_h1 uses the inputs i1, i2, the weights w_i1,h1 and w_i2,h1, and the neuron h1
    assert refs == {"u0_0", "u0_1", "w0_0_0", "w0_1_0", "u1_0"}
    assert set(s["hl"]) == refs  # exactly these picture elements are highlighted
    position = int(s["count"].split(" / ")[0])
    body.send_keys(Keys.ARROW_RIGHT)
    s2 = _state(browser)
    assert int(s2["count"].split(" / ")[0]) == position + 1
    assert s2["text"].startswith("h") and set(s2["hl"]) == {"u1_0"}  # h1 = sigmoid(net_h1)
    body.send_keys(Keys.ARROW_LEFT)
    assert int(_state(browser)["count"].split(" / ")[0]) == position
    nav = browser.find_element(By.CSS_SELECTOR, "nav.dp-steps")
    nav.find_element(By.CSS_SELECTOR, "[data-act=next]").click()
    assert int(_state(browser)["count"].split(" / ")[0]) == position + 1
    nav.find_element(By.CSS_SELECTOR, "[data-act=prev]").click()
    assert int(_state(browser)["count"].split(" / ")[0]) == position
    nav.find_element(By.CSS_SELECTOR, "[data-act=all]").click()
    s = _state(browser)
    assert not s["stepping"] and s["later"] == 0 and s["hl"] == []
    assert console_errors(browser) == []


def test_backward_lines_highlight_deltas_and_connections(browser, tmp_path):
    open_page(browser, tmp_path, "mattmazur-2-2-2.toml")
    found = {}
    for s in _steps(browser, 400):
        text = s["text"] or ""
        if text.startswith("δh1") and s["refs"]:  # delta_h1 = (delta_o1 w + delta_o2 w) ...
            found["delta"] = s
        if text.startswith("∂E∂wh1,o1"):  # dE/dw_h1,o1 = delta_o1 * h1
            found["grad"] = s
        if len(found) == 2:
            break
    delta, grad = found["delta"], found["grad"]
    # delta_h1 flows back from o1 and o2 through the weights that leave h1
    assert set(delta["refs"].split()) == {"u1_0", "w1_0_0", "w1_0_1", "u2_0", "u2_1"}
    assert set(delta["hl"]) == set(delta["refs"].split())
    assert set(grad["refs"].split()) == {"w1_0_0", "u1_0", "u2_0"} == set(grad["hl"])


def test_chinese_page_and_matrix_notation(browser, tmp_path):
    open_page(browser, tmp_path, "minibatch-2-layer.toml", lang="zh", notation="matrix")
    assert console_errors(browser) == []
    lang, text = browser.execute_script(
        "return [document.documentElement.lang, document.body.innerText]"
    )
    assert lang == "zh" and "前向传播" in text and "反向传播" in text
    wide = browser.execute_script(
        "return document.documentElement.scrollWidth <= document.documentElement.clientWidth"
    )
    assert wide
    for s in _steps(browser, 100):  # to the first matrix line: it uses the whole first layer
        if (s["text"] or "").startswith("I1"):
            break
    assert s["text"].replace(" ", "").startswith("I1=XW1+b1")
    assert set(s["hl"]) == {"u0_0", "u0_1", "u1_0", "u1_1", "w0_0_0", "w0_0_1", "w0_1_0", "w0_1_1"}


def test_layer_norm_lines_highlight_their_units_only(browser, tmp_path):
    open_page(browser, tmp_path, "layernorm.toml")
    found = {}
    for s in _steps(browser, 300):
        text = (s["text"] or "").replace(" ", "")
        if text.startswith("x^y1") and "xhat" not in found:  # xhat_y1 = (h1 - mu) / ...
            found["xhat"] = s
        if text.startswith("∂E∂wy1,o1"):  # dE/dw_y1,o1 = delta_o1 * y1
            found["grad"] = s
            break
    # h1 -> y1 through the layer norm: h1, its connection to y1, and y1
    assert set(found["xhat"]["hl"]) == {"u1_0", "w1_0_0", "u2_0"}
    # the weight from y1 to o1 and its two neurons; not the connection h1 -> y1
    assert set(found["grad"]["hl"]) == {"w2_0_0", "u2_0", "u3_0"}
