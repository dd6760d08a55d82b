"""Render the project's DVC plots offline and check them in headless Chromium.

`dvc plots show` (or `dvc plots diff REV...`) writes an HTML page whose Vega scripts come from a CDN;
offline, this script gives DVC an HTML template that loads a local bundle of Vega, Vega-Lite and
Vega-Embed instead (from the vl-convert-python package), opens the page in headless Chromium, counts
the plots that rendered, and takes a screenshot. Prints JSON. Needs: chromium (Debian package) and
`pip install vl-convert-python`.

    python bench/plots_screenshot.py --repo . --png /tmp/plots.png            # dvc plots show
    python bench/plots_screenshot.py --repo . --png /tmp/diff.png HEAD exp-1  # dvc plots diff HEAD exp-1
"""
from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import click

TEMPLATE = """<!DOCTYPE html>
<html>
<head><meta charset="utf-8"><title>DVC plots</title><script src="vega-bundle.js"></script></head>
<body>
{plot_divs}
</body>
</html>
"""


def render_page(repo: Path, out: Path, revs: tuple[str, ...]) -> Path:
    """dvc plots show/diff into `out`, with the local Vega bundle beside index.html."""
    import vl_convert

    out.mkdir(parents=True, exist_ok=True)
    template = out / "template.html"
    template.write_text(TEMPLATE)
    cmd = ["dvc", "plots", "diff", *revs] if revs else ["dvc", "plots", "show"]
    subprocess.run([*cmd, "--html-template", str(template), "-o", str(out / "html")], cwd=repo, check=True,
                   capture_output=True, text=True)
    (out / "html" / "vega-bundle.js").write_text(vl_convert.javascript_bundle())
    return out / "html" / "index.html"


def chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        raise click.ClickException("chromium not found (apt-get install -y chromium)")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
             "--virtual-time-budget=20000"]
    return subprocess.run([binary, *flags, *args], capture_output=True, text=True, timeout=300)


@click.command()
@click.argument("revs", nargs=-1)
@click.option("--repo", default=".", show_default=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--png", required=True, type=click.Path(dir_okay=False, path_type=Path), help="screenshot to write.")
@click.option("--height", default=4200, show_default=True, help="window height in pixels (the page is long).")
def main(revs: tuple[str, ...], repo: Path, png: Path, height: int) -> None:
    """Render `dvc plots show` (or `dvc plots diff REVS`) offline; count rendered plots; screenshot."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        page = render_page(repo.resolve(), tmp / "render", revs)
        html = page.read_text()
        declared = html.count("vegaEmbed(")
        dom = chromium(["--dump-dom", page.as_uri()], tmp / "profile-dom").stdout
        rendered = dom.count('class="marks"')  # vega-embed's canvas/svg: present only once a plot has drawn
        png.parent.mkdir(parents=True, exist_ok=True)
        shot = chromium([f"--screenshot={png.resolve()}", f"--window-size=1400,{height}", page.as_uri()],
                        tmp / "profile-shot")
    if shot.returncode or not png.is_file():
        raise click.ClickException(f"chromium failed: {shot.stderr[-2000:]}")
    click.echo(json.dumps(dict(command="plots diff " + " ".join(revs) if revs else "plots show", declared=declared,
                               rendered=rendered, screenshot=str(png), png_bytes=png.stat().st_size)))
    if rendered < declared:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
