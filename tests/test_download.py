"""Dataset downloads against a local HTTP server: cache, checksums, atomic files, offline errors, loaders."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import http.server
import io
import os
import pickle
import socket
import tarfile
import threading
import zipfile

import numpy as np
import pytest
from PIL import Image

from generator.inputs import download
from generator.inputs.datasets import write_idx
from generator.inputs.download import RemoteFile, cache_root, download_file, fetch, load_recipe, read_cifar10_tarball
from generator.errors import UserError


class LocalServer:
    """Serves ``files`` on 127.0.0.1; names in ``drop`` get half their bytes, then the connection closes."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.drop: set[str] = set()
        self.requests: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                name = self.path.lstrip("/")
                server.requests.append(name)
                if name not in server.files:
                    self.send_error(404, "Not Found")
                    return
                data = server.files[name]
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if name in server.drop:
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                else:
                    self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    running = LocalServer()
    yield running
    running.close()


@pytest.fixture
def closed_port_url():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/"   # nothing listens here any more


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def serve_recipe(monkeypatch, server, recipe_name: str, files: dict[str, bytes]) -> None:
    """Serve small stand-ins for a recipe's files and record their MD5s in the recipe."""
    server.files.update(files)
    recipe = download.RECIPES[recipe_name]
    assert {f.name for f in recipe.files} == set(files)
    patched = dataclasses.replace(recipe, files=tuple(RemoteFile(name, md5=md5(data)) for name, data in files.items()))
    monkeypatch.setitem(download.RECIPES, recipe_name, patched)


def idx_bytes(array: np.ndarray, tmp_path) -> bytes:
    path = tmp_path / "scratch.idx.gz"
    write_idx(path, array)
    return path.read_bytes()


def tiny_fashion_files(tmp_path) -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    return {
        "train-images-idx3-ubyte.gz": idx_bytes(rng.integers(0, 256, (20, 28, 28), dtype=np.uint8), tmp_path),
        "train-labels-idx1-ubyte.gz": idx_bytes(np.arange(20, dtype=np.uint8) % 10, tmp_path),
        "t10k-images-idx3-ubyte.gz": idx_bytes(rng.integers(0, 256, (10, 28, 28), dtype=np.uint8), tmp_path),
        "t10k-labels-idx1-ubyte.gz": idx_bytes(np.arange(10, dtype=np.uint8), tmp_path),
    }


def no_leftovers(folder) -> list[str]:
    return sorted(os.listdir(folder)) if folder.exists() else []


# --- download mechanics ---------------------------------------------------------------------

def test_fashion_mnist_downloads_verifies_and_loads(monkeypatch, server, tmp_path, capsys):
    serve_recipe(monkeypatch, server, "fashion-mnist", tiny_fashion_files(tmp_path))
    data = load_recipe("fashion-mnist", tmp_path / "cache", server.url)
    assert data.source == "download" and data.class_names[0] == "T-shirt/top"
    assert data.x_train.shape == (20, 28, 28, 1) and data.x_test.shape == (10, 28, 28, 1)
    assert data.x_train.dtype == np.float32 and data.x_train.max() <= 1.0
    assert data.y_train.tolist() == [i % 10 for i in range(20)]
    assert "MD5-checked" in data.provenance and data.licence == "MIT (Zalando SE)"
    folder = tmp_path / "cache" / "downloads" / "fashion-mnist"
    assert no_leftovers(folder) == sorted(server.files)
    assert "downloaded train-images-idx3-ubyte.gz" in capsys.readouterr().err


def test_second_call_uses_the_cache_without_network(monkeypatch, server, tmp_path, closed_port_url):
    serve_recipe(monkeypatch, server, "fashion-mnist", tiny_fashion_files(tmp_path))
    first = fetch("fashion-mnist", tmp_path, server.url, progress=False)
    assert len(server.requests) == 4
    again = fetch("fashion-mnist", tmp_path, closed_port_url, progress=False)
    assert again == first and len(server.requests) == 4


def test_a_damaged_cached_file_is_downloaded_again(monkeypatch, server, tmp_path):
    serve_recipe(monkeypatch, server, "fashion-mnist", tiny_fashion_files(tmp_path))
    paths = fetch("fashion-mnist", tmp_path, server.url, progress=False)
    paths["t10k-labels-idx1-ubyte.gz"].write_bytes(b"damaged")
    fetch("fashion-mnist", tmp_path, server.url, progress=False)
    assert server.requests[4:] == ["t10k-labels-idx1-ubyte.gz"]
    assert paths["t10k-labels-idx1-ubyte.gz"].read_bytes() == server.files["t10k-labels-idx1-ubyte.gz"]


def test_checksum_mismatch_discards_the_file(server, tmp_path):
    server.files["data.bin"] = b"what the server really has"
    target = tmp_path / "cache" / "data.bin"
    with pytest.raises(UserError, match=r"MD5 is .* expected 0+; the file was discarded"):
        download_file(server.url + "data.bin", target, RemoteFile("data.bin", md5="0" * 32), progress=False)
    assert no_leftovers(target.parent) == []
    with pytest.raises(UserError, match="SHA256"):
        download_file(server.url + "data.bin", target, RemoteFile("data.bin", sha256="f" * 64), progress=False)
    assert no_leftovers(target.parent) == []


def test_connection_dropped_halfway_leaves_no_partial_file(server, tmp_path):
    server.files["big.bin"] = os.urandom(300_000)
    server.drop.add("big.bin")
    target = tmp_path / "big.bin"
    with pytest.raises(UserError, match="cannot download .*big.bin") as caught:
        download_file(server.url + "big.bin", target, progress=False)
    assert "\n" not in str(caught.value)
    assert no_leftovers(tmp_path) == []


def test_offline_is_one_clear_line(tmp_path, closed_port_url, monkeypatch):
    monkeypatch.setenv("BUTTERFLY_CACHE", str(tmp_path / "env-cache"))
    with pytest.raises(UserError) as caught:
        fetch("cifar-10", base_url=closed_port_url, progress=False)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"cannot download {closed_port_url}cifar-10-python.tar.gz: connection refused")
    assert "no internet?" in message and str(tmp_path / "env-cache" / "downloads" / "cifar-10") in message
    assert "data.source: idx or folder" in message
    assert no_leftovers(tmp_path / "env-cache" / "downloads" / "cifar-10") == []


def test_http_error_and_unknown_recipe(server, tmp_path):
    with pytest.raises(UserError, match="HTTP 404"):
        download_file(server.url + "missing.bin", tmp_path / "missing.bin", progress=False)
    assert no_leftovers(tmp_path) == []
    with pytest.raises(UserError, match="unknown recipe 'cifar10' \\(did you mean 'cifar-10'\\?\\)"):
        load_recipe("cifar10", tmp_path)


def test_cache_location_and_mirror_from_the_environment(monkeypatch, server, tmp_path):
    monkeypatch.setenv("BUTTERFLY_CACHE", str(tmp_path / "c"))
    assert cache_root() == tmp_path / "c"
    assert cache_root(tmp_path / "given") == tmp_path / "given"
    monkeypatch.delenv("BUTTERFLY_CACHE")
    assert cache_root() == download.Path.home() / ".cache" / "butterfly"
    serve_recipe(monkeypatch, server, "fashion-mnist", tiny_fashion_files(tmp_path))
    monkeypatch.setenv("BUTTERFLY_DOWNLOAD_URL", server.url)
    fetch("fashion-mnist", tmp_path / "c2", progress=False)
    assert len(server.requests) == 4


# --- CIFAR-10 -------------------------------------------------------------------------------

def cifar_batch(labels: list[int]) -> bytes:
    """A CIFAR-style batch: rows of 3072 bytes, the R plane then G then B; keys as bytes like Python 2's."""
    data = np.zeros((len(labels), 3072), dtype=np.uint8)
    for row, label in enumerate(labels):
        data[row, 1024 * (label % 3): 1024 * (label % 3 + 1)] = 255   # label 0 red, 1 green, 2 blue
        data[row, 0] = label                                          # top-left red value marks the label
    return pickle.dumps({b"batch_label": b"test", b"labels": labels, b"data": data,
                         b"filenames": [b"x.png"] * len(labels)}, protocol=2)


def cifar_tarball(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def tiny_cifar_members() -> dict[str, bytes]:
    members = {f"data_batch_{i}": cifar_batch([i % 3, (i + 1) % 3]) for i in range(1, 6)}
    members["test_batch"] = cifar_batch([0, 1, 2])
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    members["batches.meta"] = pickle.dumps({b"label_names": names, b"num_vis": 3072}, protocol=2)
    return members


def test_cifar10_loads_from_the_tarball(monkeypatch, server, tmp_path):
    serve_recipe(monkeypatch, server, "cifar-10", {"cifar-10-python.tar.gz": cifar_tarball(tiny_cifar_members())})
    data = load_recipe("cifar-10", tmp_path, server.url, progress=False)
    assert data.class_names[:3] == ["airplane", "automobile", "bird"]
    assert data.x_train.shape == (10, 32, 32, 3) and data.x_test.shape == (3, 32, 32, 3)
    assert data.y_test.tolist() == [0, 1, 2]
    for x, y in zip(data.x_test, data.y_test):
        assert x[..., y % 3].mean() > 0.99     # the label's plane became the label's channel
        assert x[0, 0, 0] == pytest.approx(y / 255)   # row-major: first byte is the top-left red value


def test_cifar_pickle_naming_other_code_is_refused(tmp_path):
    target = tmp_path / "created-by-pickle"

    class Exploit:
        def __reduce__(self):
            return os.mkdir, (str(target),)

    members = tiny_cifar_members()
    members["data_batch_3"] = pickle.dumps({b"data": Exploit()}, protocol=2)
    tarball = tmp_path / "evil.tar.gz"
    tarball.write_bytes(cifar_tarball(members))
    with pytest.raises(UserError, match=r"data_batch_3: not a CIFAR batch \(refused to load (posix|os)\.mkdir\)"):
        read_cifar10_tarball(tarball)
    assert not target.exists()


def test_not_a_cifar_tarball(tmp_path):
    path = tmp_path / "x.tar.gz"
    path.write_bytes(gzip.compress(b"plain text"))
    with pytest.raises(UserError, match="cannot read the CIFAR-10 tarball"):
        read_cifar10_tarball(path)
    path.write_bytes(cifar_tarball({"test_batch": cifar_batch([0])}))
    with pytest.raises(UserError, match="missing .*data_batch_1"):
        read_cifar10_tarball(path)


# --- Tiny ImageNet, CNN Explainer's ten classes ---------------------------------------------

def class_colour(index: int) -> tuple[int, int, int]:
    hue = Image.new("HSV", (1, 1), (int(index * 255 / 10), 255, 255)).convert("RGB")
    return hue.getpixel((0, 0))


def jpeg(colour, size=64) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def tiny_imagenet_zip() -> bytes:
    buffer = io.BytesIO()
    annotations = []
    with zipfile.ZipFile(buffer, "w") as archive:
        wnids = [wnid for _, wnid in download.CNN_EXPLAINER_WNIDS] + ["n01443537"]   # plus a class not wanted
        for index, wnid in enumerate(wnids):
            for i in range(2):
                archive.writestr(f"tiny-imagenet-200/train/{wnid}/images/{wnid}_{i}.JPEG", jpeg(class_colour(index)))
            archive.writestr(f"tiny-imagenet-200/train/{wnid}/{wnid}_boxes.txt", "boxes")
            archive.writestr(f"tiny-imagenet-200/val/images/val_{index}.JPEG", jpeg(class_colour(index)))
            annotations.append(f"val_{index}.JPEG\t{wnid}\t0\t0\t63\t63")
        archive.writestr("tiny-imagenet-200/val/val_annotations.txt", "\n".join(annotations) + "\n")
        archive.writestr("tiny-imagenet-200/train/n03662601/images/../../../../../escape.JPEG", jpeg((0, 0, 0)))
        archive.writestr("tiny-imagenet-200/wnids.txt", "\n".join(wnids))
    return buffer.getvalue()


def test_tiny_imagenet_subset_in_cnn_explainer_order(monkeypatch, server, tmp_path):
    serve_recipe(monkeypatch, server, "tiny-imagenet-cnn-explainer", {"tiny-imagenet-200.zip": tiny_imagenet_zip()})
    cache = tmp_path / "cache"
    data = load_recipe("tiny-imagenet-cnn-explainer", cache, server.url, progress=False)
    assert data.class_names == ["lifeboat", "ladybug", "pizza", "bell pepper", "school bus", "koala", "espresso",
                                "red panda", "orange", "sport car"]
    assert data.x_train.shape == (20, 64, 64, 3) and data.x_test.shape == (10, 64, 64, 3)
    assert data.y_test.tolist() == list(range(10))
    for x, y in zip(data.x_test, data.y_test):
        np.testing.assert_allclose(x.mean(axis=(0, 1)), np.array(class_colour(int(y))) / 255, atol=0.03)
    extracted = cache / "datasets" / "tiny-imagenet-cnn-explainer"
    assert sorted(os.listdir(extracted / "train")) == sorted(data.class_names)
    assert [p.name for p in tmp_path.rglob("escape.JPEG")] == []
    assert not any(p.name.endswith(".part") for p in extracted.parent.iterdir())
    again = load_recipe("tiny-imagenet-cnn-explainer", cache, server.url, progress=False, train_per_class=1, seed=5)
    assert len(server.requests) == 1
    assert again.x_train.shape == (10, 64, 64, 3) and sorted(again.y_train.tolist()) == list(range(10))
    assert "seeded subset (seed 5)" in again.provenance


def test_a_zip_that_is_not_tiny_imagenet(tmp_path):
    path = tmp_path / "other.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "hello")
    with pytest.raises(UserError, match="not the Tiny ImageNet zip"):
        download.extract_tiny_imagenet_subset(path, tmp_path / "out")
    assert not (tmp_path / "out").exists() and [p for p in tmp_path.iterdir() if p.name.endswith(".part")] == []
