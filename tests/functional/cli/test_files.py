"""``nlxc file push -r``, ``file mkdir`` and ``file delete`` against a
real ``nlxd`` and container."""

from __future__ import annotations

import os


def test_trees_directories_and_deletes(nlxc, busybox_image, tmp_path):
    nlxc("launch", busybox_image, "f1")
    try:
        src = tmp_path / "site"
        (src / "css" / "deep").mkdir(parents=True)
        (src / "index.html").write_bytes(b"<p>hi</p>\n")
        (src / "css" / "deep" / "x.css").write_bytes(b"p {}\n")
        (src / "latest").symlink_to("index.html")
        os.chmod(src / "css", 0o750)
        nlxc("file", "mkdir", "-p", "f1/srv/www", "--uid", "33",
             "--mode", "0775")
        nlxc("file", "push", "-r", str(src), "f1/srv/www", "--uid", "33",
             "--gid", "33")
        stat = nlxc.out("exec", "f1", "--", "stat", "-c", "%n %a %u %g",
                        "/srv", "/srv/www", "/srv/www/site/css",
                        "/srv/www/site/index.html").splitlines()
        assert stat == ["/srv 755 0 0", "/srv/www 775 33 0",
                        "/srv/www/site/css 750 33 33",
                        f"/srv/www/site/index.html "
                        f"{(src / 'index.html').stat().st_mode & 0o777:o}"
                        f" 33 33"]
        assert nlxc.out("exec", "f1", "--", "cat",
                        "/srv/www/site/css/deep/x.css") == "p {}\n"
        assert nlxc.out("exec", "f1", "--", "readlink",
                        "/srv/www/site/latest") == "index.html\n"

        assert "not empty" in nlxc.fails("file", "delete",
                                         "f1/srv/www/site/css")
        nlxc("file", "delete", "f1/srv/www/site/css/deep/x.css",
             "f1/srv/www/site/css/deep", "f1/srv/www/site/latest")
        assert nlxc.out("exec", "f1", "--", "ls", "/srv/www/site") == (
            "css\nindex.html\n")
        assert "not found" in nlxc.fails("file", "delete",
                                         "f1/srv/www/site/latest")
        assert "not a directory" in nlxc.fails(
            "file", "push", "-r", str(src / "index.html"), "f1/srv/")
        assert "not found" in nlxc.fails("file", "mkdir", "f1/no/such")

        # A link the tenant makes to / is not a way out.
        nlxc("exec", "f1", "--", "ln", "-s", "/", "/srv/root")
        assert "symlink" in nlxc.fails("file", "mkdir",
                                       f"f1/srv/root{tmp_path}/owned")
        assert "symlink" in nlxc.fails("file", "delete",
                                       f"f1/srv/root{src}/index.html")
        assert not (tmp_path / "owned").exists()
        assert (src / "index.html").exists()
    finally:
        nlxc("delete", "--force", "f1")
