"""Write the fuzz runs' seed corpora (tests/fuzz/corpus/): small generated images in every
format amber decodes, some cut short or damaged, and a few JSONL files of posts. No real
media. Run from the repository root to regenerate: ``python tests/fuzz/make_corpus.py``."""

from __future__ import annotations

import io
import json
from pathlib import Path

from PIL import Image

from amber.synthetic import photo

CORPUS = Path(__file__).with_name("corpus")


def _save(image: Image.Image, format: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, format=format, **options)
    return out.getvalue()


def media() -> dict[str, bytes]:
    """Seed images, each under a few KB."""
    rgb = photo(1, 24, 16)
    files = {
        "photo.jpg": _save(rgb, "JPEG", quality=60),
        "progressive.jpg": _save(rgb, "JPEG", quality=60, progressive=True),
        "grey.jpg": _save(rgb.convert("L"), "JPEG", quality=60),
        "cmyk.jpg": _save(rgb.convert("CMYK"), "JPEG", quality=60),
        "photo.png": _save(rgb, "PNG"),
        "alpha.png": _save(rgb.convert("RGBA"), "PNG"),
        "palette.png": _save(rgb.convert("P"), "PNG"),
        "grey16.png": _save(rgb.convert("I;16"), "PNG"),
        "animated.png": _save(rgb, "PNG", save_all=True, append_images=[photo(2, 24, 16)]),
        "photo.gif": _save(rgb.convert("P"), "GIF"),
        "animated.gif": _save(
            rgb.convert("P"), "GIF", save_all=True, append_images=[photo(2, 24, 16).convert("P")]
        ),
        "photo.webp": _save(rgb, "WEBP", quality=50),
        "lossless.webp": _save(photo(3, 8, 8), "WEBP", lossless=True),
        "photo.bmp": _save(photo(4, 8, 8), "BMP"),
        "photo.tif": _save(photo(5, 8, 8), "TIFF"),
        "deflate.tif": _save(photo(5, 8, 8), "TIFF", compression="tiff_deflate"),
    }
    exif = Image.Exif()
    exif[0x0112] = 6
    files["rotated.jpg"] = _save(rgb, "JPEG", quality=60, exif=exif.tobytes())
    files["truncated.jpg"] = files["photo.jpg"][:-1]
    files["half.png"] = files["photo.png"][: len(files["photo.png"]) // 2]
    files["empty"] = b""
    files["text.svg"] = b'<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"/>'
    return files


def posts() -> dict[str, bytes]:
    """Seed JSONL files: valid posts and the usual mistakes, one line each."""
    lines = [
        {"id": "p1", "text": "hello", "author": "a", "created_at": "2016-05-01T12:00:00Z"},
        {
            "id": "p2",
            "text": "Kill him or let him go? You have one hour to vote",
            "poll": {
                "question": "?",
                "options": ["kill", "free"],
                "closes_at": "2016-05-01T13:00Z",
            },
            "reply_to": "p1",
        },
        {"id": "p3", "media": [{"path": "missing.jpg"}]},
        {"id": "", "created_at": "2016-05-01T12:00:00"},
        {"id": "p4", "poll": {"question": "q", "options": []}},
    ]
    files = {f"line-{i}.jsonl": json.dumps(line).encode() + b"\n" for i, line in enumerate(lines)}
    files["all.jsonl"] = b"".join(files.values())
    files["bom.jsonl"] = b'\xef\xbb\xbf{"id": "b"}\r\n\n'
    files["bad.jsonl"] = b'{"id": "x"\n\xff\xfe\n[1, 2]\n{"id": "\\ud800"}\n'
    return files


def main() -> None:
    for kind, files in (("media", media()), ("posts", posts())):
        folder = CORPUS / kind
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            (folder / name).write_bytes(data)


if __name__ == "__main__":
    main()
