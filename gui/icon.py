"""The application icon, drawn with QPainter (no binary source art to maintain).

``python -m gui.icon [DIR]`` writes ``leukoscan-<size>.png`` (16..256), ``leukoscan.ico`` and
``leukoscan.icns`` (via Pillow) into ``resources/icons`` — the files the app window and the PyInstaller bundle use.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

from PySide6.QtCore import QBuffer, QIODevice, QPointF, QRectF, Qt
from PySide6.QtGui import (
    QBrush,
    QColor,
    QIcon,
    QImage,
    QLinearGradient,
    QPainter,
    QPainterPath,
    QPen,
    QPixmap,
    QRadialGradient,
)

SIZES = (16, 24, 32, 48, 64, 128, 256)


def render_icon(size: int) -> QImage:
    """A stained lymphoblast (violet nucleus, pale cytoplasm) on a blue rounded square."""
    img = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
    img.fill(Qt.GlobalColor.transparent)
    p = QPainter(img)
    p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
    s = float(size)
    m = max(0.5, s * 0.03)
    bg = QRectF(m, m, s - 2 * m, s - 2 * m)
    g = QLinearGradient(bg.topLeft(), bg.bottomRight())
    g.setColorAt(0.0, QColor("#2e86c1"))
    g.setColorAt(1.0, QColor("#154360"))
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(QBrush(g))
    p.drawRoundedRect(bg, s * 0.2, s * 0.2)

    c = QPointF(s * 0.5, s * 0.52)
    r = s * 0.36
    cyto = QRadialGradient(c, r)
    cyto.setColorAt(0.0, QColor("#fbe3f1"))
    cyto.setColorAt(1.0, QColor("#e3a9cf"))
    p.setBrush(QBrush(cyto))
    p.setPen(QPen(QColor("#7d3c98"), max(1.0, s * 0.025)))
    p.drawEllipse(c, r, r)

    # nucleus: a slightly irregular violet blob filling most of the cell (high N:C ratio of a blast)
    nc = QPointF(s * 0.45, s * 0.49)  # eccentric, like a real lymphoblast's nucleus
    nr = s * 0.245
    path = QPainterPath()
    path.addEllipse(nc, nr * 1.08, nr * 0.96)
    notch = QPainterPath()  # a shallow cleft: a nucleus, not an eye
    notch.addEllipse(QPointF(nc.x() + nr * 1.05, nc.y() + nr * 0.55), nr * 0.38, nr * 0.3)
    path = path.subtracted(notch)
    ng = QRadialGradient(QPointF(nc.x() - nr * 0.3, nc.y() - nr * 0.3), nr * 1.4)
    ng.setColorAt(0.0, QColor("#a569bd"))
    ng.setColorAt(1.0, QColor("#4a235a"))
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(QBrush(ng))
    p.drawPath(path)
    if size >= 32:  # nucleolus
        p.setBrush(QColor(255, 255, 255, 90))
        p.drawEllipse(QPointF(nc.x() + nr * 0.3, nc.y() - nr * 0.2), nr * 0.22, nr * 0.2)
    p.end()
    return img


def app_icon() -> QIcon:
    icon = QIcon()
    folder = _icons_dir()
    found = False
    for sz in SIZES:
        f = folder / f"leukoscan-{sz}.png"
        if f.is_file():
            icon.addFile(str(f))
            found = True
    if not found:
        for sz in SIZES:
            icon.addPixmap(QPixmap.fromImage(render_icon(sz)))
    return icon


def _icons_dir() -> Path:
    try:
        from engine.paths import resources_dir

        return resources_dir() / "icons"
    except Exception:  # pragma: no cover
        return Path(__file__).resolve().parent.parent / "resources" / "icons"


def write_icons(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    pil = []
    for sz in SIZES:
        img = render_icon(sz)
        f = folder / f"leukoscan-{sz}.png"
        img.save(str(f), b"PNG")
        out.append(f)
        pil.append(_to_pil(img))
    ico = folder / "leukoscan.ico"
    pil[-1].save(ico, format="ICO", sizes=[(s, s) for s in SIZES], append_images=pil[:-1])
    out.append(ico)
    # macOS: an .icns from real renderings at every size it holds (no upscaled 256 px art)
    big = [_to_pil(render_icon(sz)) for sz in (512, 1024)]
    icns = folder / "leukoscan.icns"
    big[-1].save(icns, format="ICNS", append_images=pil + big[:-1])
    out.append(icns)
    return out


def _to_pil(img: QImage):
    from PIL import Image

    buf = QBuffer()
    buf.open(QIODevice.OpenModeFlag.WriteOnly)
    img.save(buf, b"PNG")
    return Image.open(io.BytesIO(buf.data().data())).convert("RGBA")


def main(argv: list[str] | None = None) -> int:
    from PySide6.QtGui import QGuiApplication

    argv = sys.argv[1:] if argv is None else argv
    app = QGuiApplication.instance() or QGuiApplication(["leukoscan-icon", "-platform", "offscreen"])
    assert app is not None  # QPainter on QImage needs a (Gui) application object
    folder = Path(argv[0]) if argv else _icons_dir()
    for f in write_icons(folder):
        print(f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
