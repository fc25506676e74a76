"""Swagger UI's "Try it out", in a real browser, for every operation the API documents.

Headless Chromium (Debian's ``chromium`` and ``chromium-driver``; ``.ci/run`` installs them)
opens ``/docs`` of the application ``harness serve`` runs, serving a generator trained under
mixed_bfloat16. Every request that is not for this machine goes to a proxy that does not exist,
so a page that needs the internet fails here as it would offline. For each operation and each
request content type of the OpenAPI document the test clicks "Try it out", sends what Swagger
UI fills in from the document (a real photo for the uploads), clicks "Execute" and reads the
status and the body that Swagger UI shows.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pytest
from conftest import SavedGenerator, save_generator
from PIL import Image
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.ui import WebDriverWait
from skimage import data
from test_serve import serving

from harness import __version__
from harness.data.images import to_uint8
from harness.deploy.models import load_upscaler
from harness.deploy.serve import create_app
from harness.deploy.upscaler import Upscaler

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
NAME = "x4"
"""The served name; not the default, so the document's examples must follow ``--name``."""
OK = {"error_code": "OK", "error_message": ""}

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()),
        reason=f"needs {CHROMIUM} and {CHROMEDRIVER}: apt-get install chromium chromium-driver "
        "(.ci/run installs them)",
    ),
]

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # without these three Chromium keeps calling Google's services (updates, sync, trials)
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # no route out: every request not for 127.0.0.1 goes to a closed port (the discard port)
    "--proxy-server=127.0.0.1:9",
    "--window-size=1280,1600",
)


@dataclass
class Shown:
    """What Swagger UI shows under "Responses" after "Execute"."""

    status: int
    text: str
    png: bytes | None

    def json(self) -> dict:
        return json.loads(self.text)

    def image(self) -> np.ndarray:
        assert self.png is not None, f"no image shown (status {self.status}): {self.text[:300]}"
        return np.asarray(Image.open(io.BytesIO(self.png)))


class SwaggerUI:
    """The page ``/docs`` in ``driver``: open an operation, try it out, read the answer."""

    def __init__(self, driver: webdriver.Chrome, document: dict) -> None:
        self.driver, self.document = driver, document

    def wait(self, condition, seconds: float = 60):
        return WebDriverWait(self.driver, seconds, poll_frequency=0.1).until(condition)

    def operation(self, method: str, path: str) -> WebElement:
        """The operation's block, opened, with "Try it out" pressed."""
        spec = self.document["paths"][path][method]
        tag = (spec.get("tags") or ["default"])[0]
        block = self.driver.find_element(By.ID, f"operations-{tag}-{spec['operationId']}")
        self.driver.execute_script("arguments[0].scrollIntoView()", block)
        if "is-open" not in (block.get_attribute("class") or ""):
            block.find_element(By.CSS_SELECTOR, ".opblock-summary-control").click()
        button = self.wait(lambda _: block.find_elements(By.CSS_SELECTOR, ".try-out__btn"))[0]
        if button.text.strip() == "Try it out":
            button.click()
        self.wait(lambda _: block.find_elements(By.CSS_SELECTOR, "button.execute"))
        return block

    def execute(
        self,
        block: WebElement,
        content_type: str | None = None,
        body: str | None = None,
        upload: Path | None = None,
    ) -> Shown:
        """Choose ``content_type``, replace the JSON body with ``body`` or choose the file
        ``upload``, press "Execute" and wait for the answer."""
        for clear in block.find_elements(By.CSS_SELECTOR, "button.btn-clear"):
            clear.click()  # the last answer, so the wait below sees the new one
        if content_type is not None:
            select = block.find_element(
                By.CSS_SELECTOR, ".opblock-section-request-body select.content-type"
            )
            Select(select).select_by_value(content_type)
            # Swagger UI 5.29 and later keep the last content type's value (a form, a file)
            # and send it as the new type's body until "Reset" (swagger-ui issue 10738)
            block.find_element(By.CSS_SELECTOR, "button.try-out__btn.reset").click()
        if body is not None:
            area = block.find_element(By.CSS_SELECTOR, "textarea.body-param__text")
            area.send_keys(Keys.CONTROL, "a")
            area.send_keys(Keys.DELETE)
            area.send_keys(body)
        if upload is not None:
            block.find_element(By.CSS_SELECTOR, "input[type=file]").send_keys(str(upload))
        block.find_element(By.CSS_SELECTOR, "button.execute").click()
        answer = ".live-responses-table tbody tr.response"
        try:
            row = self.wait(lambda _: block.find_elements(By.CSS_SELECTOR, answer))[0]
        except TimeoutException:
            refused = [
                e.get_attribute("outerHTML")[:200]
                for e in block.find_elements(By.CSS_SELECTOR, ".invalid")
            ]
            pytest.fail(f"Swagger UI sent nothing; the fields it refuses: {refused}")
        status = int(row.find_element(By.CSS_SELECTOR, ".response-col_status").text)
        shown = row.find_element(By.CSS_SELECTOR, ".response-col_description")
        bodies = shown.find_elements(By.CSS_SELECTOR, ".response-body pre, .highlight-code pre")
        text = bodies[0].get_attribute("textContent") if bodies else ""
        images = shown.find_elements(By.TAG_NAME, "img")
        return Shown(status, text or "", self.blob(images[0]) if images else None)

    def blob(self, image: WebElement) -> bytes:
        """The bytes behind an ``<img>`` Swagger UI made from the answer."""
        encoded = self.driver.execute_async_script(
            """const [img, done] = arguments;
            fetch(img.src).then(r => r.arrayBuffer()).then(buffer => {
              let s = ""; new Uint8Array(buffer).forEach(c => { s += String.fromCharCode(c); });
              done(btoa(s));
            });""",
            image,
        )
        return base64.b64decode(encoded)

    def requested(self) -> list[str]:
        """The http(s) and ws(s) URLs the page asked for since the last call."""
        urls = []
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message["method"] == "Network.requestWillBeSent":
                urls.append(message["params"]["request"]["url"])
        return [u for u in urls if urlsplit(u).scheme in ("http", "https", "ws", "wss")]


@pytest.fixture(scope="module")
def bf16(tmp_path_factory, registry) -> SavedGenerator:
    """A tiny generator trained (saved) under mixed_bfloat16, the CPU default."""
    return save_generator(tmp_path_factory.mktemp("bf16"), registry, "mixed_bfloat16")


@pytest.fixture(scope="module")
def access_log() -> list[str]:
    return []


@pytest.fixture(scope="module")
def server(bf16, registry, access_log):
    upscaler = load_upscaler(bf16.path, registry=registry, tile=12)
    app = create_app(upscaler, name=NAME, reference=str(bf16.path), access_log=access_log.append)
    with serving(app) as client:
        yield client


@pytest.fixture(scope="module")
def docs(server, tmp_path_factory) -> SwaggerUI:
    """``/docs`` opened in headless Chromium, rendered."""
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium')}")
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    # the driver named explicitly: Selenium Manager would otherwise look for one online
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        ui = SwaggerUI(driver, server.get("/openapi.json").json())
        driver.get(f"{server.base_url}/docs")
        ui.wait(lambda d: d.find_elements(By.CSS_SELECTOR, ".opblock"))
        yield ui
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> dict[str, Path]:
    """A real 10x12 photo crop as PNG and as JPEG."""
    folder = tmp_path_factory.mktemp("photo")
    crop = Image.fromarray(data.astronaut()[100:112, 200:210])
    paths = {"image/png": folder / "face.png", "image/jpeg": folder / "face.jpg"}
    for path in paths.values():
        crop.save(path)
    return paths


def test_swagger_ui_renders_from_this_server_alone(docs, server) -> None:
    title = docs.driver.find_element(By.CSS_SELECTOR, ".swagger-ui .info .title").text
    assert title.startswith("srgan-harness upscaler")
    requested = docs.requested()
    local = f"{server.base_url}/"
    assert f"{local}openapi.json" in requested
    assets = [u for u in requested if u.endswith((".js", ".css"))]
    assert assets and all(u.startswith(f"{local}static-offline-docs/") for u in assets)
    assert [u for u in requested if not u.startswith(local)] == []
    errors = [e for e in docs.driver.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == [], errors


def includes(expected: dict) -> Callable[[Shown, Any], None]:
    """A check that the JSON answer has ``expected``'s keys with its values."""

    def check(shown: Shown, _: Any) -> None:
        answer = shown.json()
        assert {key: answer.get(key) for key in expected} == expected, answer

    return check


def test_try_it_out_works_for_every_documented_operation(docs, server, bf16, photo, access_log):
    """Each (operation, request content type) of the document, as Swagger UI fills it in."""
    twin = Upscaler.from_generator(bf16.float32)  # the float32 network that is served

    def batch(shown: Shown, sent: dict) -> None:
        lr = np.asarray(next(iter(sent.values())), np.float32)
        got = np.asarray(shown.json()["predictions"], np.float32)
        assert got.shape == (lr.shape[0], lr.shape[1] * 4, lr.shape[2] * 4, 3)
        np.testing.assert_allclose(got, twin(lr), atol=1e-5)

    def image(shown: Shown, sent: Path | dict) -> None:
        source = sent if isinstance(sent, Path) else io.BytesIO(base64.b64decode(sent["image"]))
        lr = np.asarray(Image.open(source), np.float32)[None] / 255
        want, got = to_uint8(twin(lr)[0]), shown.image()
        assert got.shape == want.shape == (lr.shape[1] * 4, lr.shape[2] * 4, 3)
        assert np.abs(got.astype(int) - want.astype(int)).max() <= 1

    def metadata(shown: Shown, _: Any) -> None:
        answer = shown.json()
        assert answer["model_spec"]["name"] == NAME and answer["metadata"]["scale"] == 4

    def ping(shown: Shown, _: Any) -> None:
        assert shown.text.strip() == ""

    checks = {
        "/ping": ping,
        "/health": includes({"status": "ok", "model": NAME, "scale": 4}),
        "/version": includes(
            {"harness": __version__, "model": NAME, "reference": str(bf16.path), "scale": 4}
        ),
        "/v1/models/{model}": includes(
            {"model_version_status": [{"version": "1", "state": "AVAILABLE", "status": OK}]}
        ),
        "/v1/models/{model}/metadata": metadata,
        "/v1/models/{target}": batch,
        "/invocations": batch,
        "/upscale": image,
    }
    tried = []
    for path, operations in docs.document["paths"].items():
        assert path in checks, f"{path} has no check here; add one"
        for method, spec in operations.items():
            block = docs.operation(method, path)
            types = list(spec.get("requestBody", {}).get("content", {})) or [None]
            for content_type in types:
                upload = photo.get(content_type or "", photo["image/png"])
                if path != "/upscale" or "json" in (content_type or ""):
                    upload = None
                shown = docs.execute(block, content_type if len(types) > 1 else None, upload=upload)
                assert shown.status == 200, (method, path, content_type, shown.text)
                areas = block.find_elements(By.CSS_SELECTOR, "textarea.body-param__text")
                sent = upload or (json.loads(areas[0].get_attribute("value")) if areas else None)
                checks[path](shown, sent)
                tried.append((method, path, content_type))
    assert len(tried) == 11 and ("post", "/upscale", "multipart/form-data") in tried, tried
    # the requests reached the routes as a client sends them (the path parameter decoded)
    assert any(f'"POST /v1/models/{NAME}:predict" 200' in line for line in access_log)
    assert [u for u in docs.requested() if not u.startswith(f"{server.base_url}/")] == []


def test_a_bad_request_shows_the_documented_400(docs) -> None:
    block = docs.operation("post", "/v1/models/{target}")
    assert block.find_elements(By.CSS_SELECTOR, 'tr.response[data-code="400"]')
    shown = docs.execute(block, body='{"instances": [[[[2.0, 0.0, 0.0]]]]}')
    assert shown.status == 400
    answer = shown.json()
    assert list(answer) == ["error"] and "[0, 1]" in answer["error"], answer
