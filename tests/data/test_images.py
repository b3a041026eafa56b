"""Resolving image_url (local, file://, http via a local server, object stores) and decoding checks."""

from __future__ import annotations

import http.server
import io
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PIL import Image

from kubevision.api.errors import KubevisionError
from kubevision.data import ImageRecord, resolve_image
from kubevision.data.check import check_dataset
from kubevision.data.images import cache_dir, inspect_image


class _Server:
    def __init__(self, root: Path) -> None:
        self.requests: list[str] = []
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args: object, **kwargs: object) -> None:
                super().__init__(*args, directory=str(root), **kwargs)  # type: ignore[arg-type]

            def do_GET(self) -> None:
                server.requests.append(self.path)
                super().do_GET()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def server(tmp_path: Path, write_image: Callable[..., Path]) -> Iterator[_Server]:
    root = tmp_path / "served"
    write_image(root / "img" / "cat 1.jpg", (40, 30))
    srv = _Server(root)
    yield srv
    srv.close()


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("KUBEVISION_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "images"


def test_relative_path_resolves_against_the_jsonl_folder(
    tmp_path: Path, make_image: Callable[..., Path]
) -> None:
    image = make_image("data/images/a.png")
    record = ImageRecord("images/a.png", 1, str(tmp_path / "data" / "train.jsonl"), "cat")
    assert resolve_image(record) == image
    assert resolve_image("images/a.png", tmp_path / "data") == image
    assert resolve_image("./images/../images/a.png", tmp_path / "data") == image


def test_absolute_path_and_file_url(tmp_path: Path, make_image: Callable[..., Path]) -> None:
    image = make_image("pics/b c.png")
    assert resolve_image(str(image), tmp_path / "elsewhere") == image
    assert resolve_image(image.as_uri(), tmp_path / "elsewhere") == image
    with pytest.raises(KubevisionError, match="must name a local file"):
        resolve_image("file://otherhost/x.png", tmp_path)


def test_missing_local_image_names_the_resolved_path_and_base(tmp_path: Path) -> None:
    with pytest.raises(KubevisionError) as err:
        resolve_image("images/nope.png", tmp_path)
    assert str(err.value) == (
        f"image file not found: {tmp_path / 'images' / 'nope.png'} "
        f"(image_url 'images/nope.png' is relative to {tmp_path})"
    )


def test_http_image_is_downloaded_once_into_the_cache(server: _Server, private_cache: Path) -> None:
    url = f"{server.url}/img/cat%201.jpg"
    first = resolve_image(url)
    assert first.parent == private_cache and first.suffix == ".jpg"
    assert inspect_image(first).width == 40
    assert resolve_image(url) == first
    assert server.requests == ["/img/cat%201.jpg"]
    assert [p.name for p in private_cache.iterdir()] == [first.name]  # no leftover partial files


def test_http_errors_name_the_url_and_leave_no_partial_file(server: _Server, private_cache: Path) -> None:
    with pytest.raises(
        KubevisionError, match=r"cannot download http://127\.0\.0\.1:\d+/img/no\.jpg: HTTP 404"
    ):
        resolve_image(f"{server.url}/img/no.jpg")
    assert list(private_cache.iterdir()) == []


def test_unreachable_host_is_a_clear_error() -> None:
    with pytest.raises(KubevisionError, match=r"cannot download http://127\.0\.0\.1:9/x\.png"):
        resolve_image("http://127.0.0.1:9/x.png")


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("KUBEVISION_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cache_dir() == tmp_path / ".cache" / "kubevision" / "images"


def test_object_store_without_its_fsspec_backend_names_the_package() -> None:
    pytest.importorskip("fsspec")
    try:
        import s3fs  # noqa: F401

        pytest.skip("s3fs is installed; this test covers the message when it is not")
    except ImportError:
        pass
    with pytest.raises(KubevisionError, match=r"s3:// images need the s3fs package \(pip install s3fs\)"):
        resolve_image("s3://bucket/images/1.jpg")


def test_object_store_without_fsspec_names_fsspec(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "fsspec", None)
    with pytest.raises(
        KubevisionError, match=r"need the fsspec and gcsfs packages \(pip install fsspec gcsfs\)"
    ):
        resolve_image("gs://bucket/1.jpg")


def test_object_store_through_fsspec_memory_filesystem(
    monkeypatch: pytest.MonkeyPatch, private_cache: Path
) -> None:
    fsspec = pytest.importorskip("fsspec")
    import kubevision.data.images as images

    memory = fsspec.filesystem("memory")
    buffer = io.BytesIO()
    Image.new("RGB", (9, 7)).save(buffer, format="PNG")
    memory.pipe("/bucket/a.png", buffer.getvalue())
    # Route s3:// to fsspec's in-memory filesystem: the code path is the real one, only the backend differs.
    real_open = fsspec.open
    monkeypatch.setattr(fsspec, "open", lambda url, mode: real_open(url.replace("s3://", "memory://"), mode))
    monkeypatch.setitem(images.FSSPEC_PACKAGES, "s3", "s3fs")
    path = resolve_image("s3://bucket/a.png")
    assert path.parent == private_cache
    assert inspect_image(path).width == 9
    with pytest.raises(KubevisionError, match=r"cannot download s3://bucket/missing\.png: no such object"):
        resolve_image("s3://bucket/missing.png")


def test_azureml_uri_says_how_to_convert() -> None:
    with pytest.raises(KubevisionError) as err:
        resolve_image("azureml://subscriptions/s/resourcegroups/r/workspaces/w/datastores/d/paths/i/1.jpg")
    assert "az ml data download" in str(err.value)
    assert "rewrite image_url relative to the JSONL file" in str(err.value)


def test_unknown_scheme_lists_the_supported_ones() -> None:
    with pytest.raises(KubevisionError, match=r"unsupported scheme ftp://; .*https://, s3://"):
        resolve_image("ftp://host/1.jpg")


def test_windows_drive_letter_is_a_path_not_a_scheme(tmp_path: Path) -> None:
    with pytest.raises(KubevisionError, match="image file not found"):
        resolve_image("C:/images/1.jpg", tmp_path)


def test_inspect_reports_size_and_format(make_image: Callable[..., Path]) -> None:
    info = inspect_image(make_image("a.jpg", (64, 48)))
    assert (info.width, info.height, info.format) == (64, 48, "jpeg")
    assert inspect_image(make_image("b.png", (5, 3))).format == "png"


def test_garbage_and_truncated_images_are_rejected(tmp_path: Path, make_image: Callable[..., Path]) -> None:
    garbage = tmp_path / "bad.png"
    garbage.write_bytes(b"this is not an image at all")
    with pytest.raises(KubevisionError, match="not an image file Pillow can read"):
        inspect_image(garbage)
    for name in ("big.jpg", "big.png"):
        good = make_image(name, (256, 256))
        cut = tmp_path / f"cut-{name}"
        cut.write_bytes(good.read_bytes()[: good.stat().st_size * 2 // 3])
        with pytest.raises(KubevisionError, match="image cannot be decoded"):
            inspect_image(cut)


def test_data_check_downloads_http_images_and_reports_failures_per_line(
    server: _Server, tmp_path: Path
) -> None:
    rows = [f'{{"image_url": "{server.url}/img/cat%201.jpg", "label": "cat"}}'] * 11
    rows.append(f'{{"image_url": "{server.url}/img/gone.jpg", "label": "dog"}}')
    path = tmp_path / "remote.jsonl"
    path.write_text("\n".join(rows) + "\n")
    report = check_dataset(path, task="image_classification")
    assert report.images == 11 and report.width_range == (40, 40)
    assert [str(p) for p in report.errors] == [
        f"{path}:12: image_url: cannot download {server.url}/img/gone.jpg: HTTP 404 File not found"
    ]
    assert server.requests.count("/img/cat%201.jpg") == 1  # the same URL is fetched once
