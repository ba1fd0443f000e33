"""Split images (a metadata tarball and a rootfs tarball, multipart) as
pylxd's ``Image.create(rootfs, metadata=...)`` uploads them: LXD's
fingerprint, metadata.yaml as properties, a container from the image;
refused uploads leave no temporary file behind."""

from __future__ import annotations

import hashlib
import io
import tarfile

import pylxd
import pytest
from pylxd import exceptions
from requests_toolbelt import MultipartEncoder

METADATA = b"""architecture: x86_64
creation_date: 1700000000
properties:
  description: busybox split
  os: busybox
templates:
  /etc/motd:
    when: [create]
    template: motd.tpl
"""


def _tarball(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture
def metadata() -> bytes:
    return _tarball({"metadata.yaml": METADATA,
                     "templates/motd.tpl": b"hello\n"})


def _uploads(daemon):
    path = daemon.root / "daemon" / "uploads"
    return sorted(p.name for p in path.iterdir()) if path.is_dir() else []


def test_split_image_with_pylxd(client, daemon, busybox_tarball, metadata):
    rootfs = busybox_tarball.read_bytes()
    image = pylxd.models.Image.create(client, rootfs, metadata=metadata)
    assert image.fingerprint == hashlib.sha256(metadata + rootfs).hexdigest()
    assert image.properties["description"] == "busybox split"
    assert image.architecture == "x86_64"
    again = pylxd.models.Image.create(client, rootfs, metadata=metadata)
    assert again.fingerprint == image.fingerprint
    assert len(client.images.all()) == 1
    inst = client.instances.create(
        {"name": "split", "source": {"type": "image",
                                     "fingerprint": image.fingerprint},
         "start": True}, wait=True)
    assert inst.execute(["echo", "up"]).stdout == "up\n"
    inst.stop(wait=True)
    # Export gives the rootfs tarball the store keeps (documented).
    exported = image.export().read()
    with tarfile.open(fileobj=io.BytesIO(exported)) as tar:
        assert "./bin/busybox" in tar.getnames() or \
            "bin/busybox" in tar.getnames()
    assert _uploads(daemon) == []


def _post(client, fields, headers=None):
    data = MultipartEncoder(fields)
    return client.api.images.post(
        data=data, headers={"Content-Type": data.content_type,
                            **(headers or {})})


def test_split_refusals(client, daemon, busybox_tarball, metadata):
    rootfs = busybox_tarball.read_bytes()
    part = "application/octet-stream"
    for fields, message in (
            ({"rootfs": ("rootfs", rootfs, part)}, "'metadata' is missing"),
            ({"metadata": ("metadata", metadata, part)},
             "'rootfs' is missing"),
            ({"metadata": ("metadata", metadata, part),
              "rootfs.img": ("rootfs.img", rootfs, part)},
             "virtual machine")):
        with pytest.raises(exceptions.LXDAPIException) as refused:
            _post(client, fields)
        assert message in str(refused.value)
    with pytest.raises(exceptions.LXDAPIException) as wrong:
        _post(client, {"metadata": ("metadata", metadata, part),
                       "rootfs": ("rootfs", rootfs, part)},
              {"X-LXD-fingerprint": "0" * 64})
    assert "X-LXD-fingerprint" in str(wrong.value)

    # Refused in the operation: rootfs/ in the metadata part, no
    # metadata.yaml, a rootfs part that is not a root tarball.
    unified = _tarball({"metadata.yaml": METADATA,
                        "templates/motd.tpl": b"x",
                        "rootfs/etc/hostname": b"x\n"})
    for meta, root, message in (
            (unified, rootfs, "holds rootfs/"),
            (_tarball({"other": b"x"}), rootfs, "no metadata.yaml"),
            (metadata, b"not a tarball" * 100, "rootfs")):
        response = _post(client, {"metadata": ("metadata", meta, part),
                                  "rootfs": ("rootfs", root, part)})
        op = client.operations.get(response.json()["operation"])
        with pytest.raises(exceptions.LXDAPIException) as failed:
            op.wait()
        assert message in str(failed.value)
    assert client.images.all() == []
    assert _uploads(daemon) == []
