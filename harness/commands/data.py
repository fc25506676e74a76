"""``harness data``: fetch public data sets, check image folders and make degraded copies."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import click

from harness.commands._options import overrides_option, registry
from harness.config import parse_overrides
from harness.data import datasets, images
from harness.data.datasets import DATASETS
from harness.data.folders import SKIMAGE, resolve
from harness.errors import HarnessError


@click.group("data")
def command() -> None:
    """Fetch public super-resolution data sets, check image folders, make LR copies."""


@command.command("list")
def list_command() -> None:
    """The data sets `harness data download` knows, with their sources."""

    for ds in DATASETS.values():
        digest = ds.sha256 or "not published (pin with --sha256)"
        click.echo(f"{ds.name:12s} {ds.description}\n{'':12s} {ds.url}\n{'':12s} sha256: {digest}")


@command.command("download")
@click.argument("names", nargs=-1, required=True, metavar="NAME...")
@click.option(
    "--dest",
    default="data",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Folder receiving <dest>/<name>/ (archives are kept in <dest>/.downloads).",
)
@click.option("--url", default=None, help="Fetch the archive from this URL instead (one NAME).")
@click.option("--sha256", default=None, help="Expected sha256 of the archive (one NAME).")
@click.option("--force", is_flag=True, help="Replace an existing <dest>/<name>.")
def download_command(
    names: tuple[str, ...], dest: str, url: str | None, sha256: str | None, force: bool
) -> None:
    """Fetch, verify and extract public data sets (div2k, set5, set14, bsd100, urban100, ...).

    Safe to interrupt: a re-run resumes the download. $HARNESS_DATA_MIRROR=http://host/dir
    fetches <mirror>/<archive name> instead of the original host.
    """
    if (url or sha256) and len(names) > 1:
        raise HarnessError("--url and --sha256 apply to one data set; name only one.")
    for name in names:
        datasets.get(name)  # every name checked before anything is fetched
    state = {"shown": -1}

    def progress(done: int, total: int | None) -> None:
        mb = done >> 20
        if mb // 16 != state["shown"]:
            state["shown"] = mb // 16
            of = f" of {total >> 20}" if total else ""
            click.echo(f"  {mb}{of} MiB", err=True)

    for name in names:
        folder = datasets.download(
            name, dest, url=url, sha256=sha256, force=force, progress=progress, log=click.echo
        )
        click.echo(f"{name}: {folder}")


@command.command("check")
@click.argument("folders", nargs=-1, required=True, metavar="DIR...")
@click.option("--min-side", type=int, default=96, show_default=True, help="Smallest usable side.")
@click.option("--scale", type=int, default=4, show_default=True, help="Flag sides not a multiple.")
def check_command(folders: tuple[str, ...], min_side: int, scale: int) -> None:
    """Report count, sizes, modes and problems of image folders (or "skimage").

    Exits 1 when any problem is listed. Images over the pixel limit ($HARNESS_MAX_IMAGE_PIXELS,
    default 8192x8192) are reported from their header and never decoded.
    """
    limit = images.max_pixels()
    failed: list[str] = []
    for spec in folders:
        files = resolve(spec)
        label = spec if spec == SKIMAGE else str(Path(spec))
        others = []
        if spec != SKIMAGE:
            others = [
                p.name
                for p in Path(spec).expanduser().iterdir()
                if p.is_file() and not images.is_image_file(p) and not p.name.startswith(".")
            ]
        sizes: Counter[tuple[int, int]] = Counter()
        modes: Counter[str] = Counter()
        kinds: Counter[str] = Counter()
        unreadable: list[str] = []
        large: list[str] = []
        small: list[str] = []
        not_multiple = 0
        for path in files:
            kinds[path.suffix.lower().lstrip(".")] += 1
            try:
                w, h, mode = images.probe_image(path, limit)
                images.read_image(path, limit)
            except images.ImageTooLargeError as exc:
                large.append(f"{path.name} ({exc.width}x{exc.height})")
                continue
            except images.ImageReadError as exc:
                unreadable.append(f"{path.name}: {exc}")
                continue
            sizes[(w, h)] += 1
            modes[mode] += 1
            if min(w, h) < min_side:
                small.append(f"{path.name} ({w}x{h})")
            if w % scale or h % scale:
                not_multiple += 1
        click.echo(
            f"{label}: {len(files)} images ({', '.join(f'{k} {n}' for k, n in kinds.items())})"
        )
        if sizes:
            widths = [w for w, _ in sizes.elements()]
            heights = [h for _, h in sizes.elements()]
            common = ", ".join(f"{w}x{h} ({n})" for (w, h), n in sizes.most_common(3))
            click.echo(
                f"  sizes: {min(widths)}..{max(widths)} x {min(heights)}..{max(heights)} px, "
                f"{len(sizes)} distinct; most common {common}"
            )
            click.echo(f"  modes: {', '.join(f'{m} {n}' for m, n in modes.most_common())}")
            click.echo(
                f"  {not_multiple} not a multiple of {scale} (cropped at evaluation)"
                if not_multiple
                else f"  all sides multiples of {scale}"
            )
        problems = [*(f"unreadable {u}" for u in unreadable)]
        problems += [
            f"over the limit of {limit} pixels (not decoded; raise it with "
            f"{images.MAX_PIXELS_ENV}=N): {g}"
            for g in large
        ]
        problems += [f"smaller than {min_side} px: {s}" for s in small]
        problems += [f"not an image (ignored): {o}" for o in sorted(others)]
        if not files:
            problems.append("no images")
        click.echo(f"  problems: {len(problems)}" if problems else "  problems: none")
        for p in problems:
            click.echo(f"    {p}")
        if problems:
            failed.append(label)
    if failed:
        click.echo(
            f"error: problems in {', '.join(failed)} (listed above); replace or remove those "
            "files, or leave them out of the data (training and evaluation skip them with a "
            "warning).",
            err=True,
        )
        raise click.exceptions.Exit(1)


@command.command("degrade")
@click.argument("src", metavar="SRC")
@click.option(
    "-o", "--out", "dst", required=True, type=click.Path(file_okay=False), help="LR folder."
)
@click.option(
    "--degradation",
    default="bicubic",
    show_default=True,
    help="A registered degradation (`harness plugins --kind degradation`).",
)
@overrides_option("A parameter of the degradation (TOML value), e.g. --set sigma=2. Repeatable.")
@click.option("--scale", type=int, default=4, show_default=True, help="Downscaling factor.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random draws.")
@click.option("--quiet", is_flag=True, help="Print only the summary.")
def degrade_command(
    src: str,
    dst: str,
    degradation: str,
    overrides: tuple[str, ...],
    scale: int,
    seed: int,
    quiet: bool,
) -> None:
    """Write a seeded LR copy of the images of SRC (same names, PNG) made by a degradation.

    Each image is cropped to a multiple of --scale and degraded whole with a seed made from
    --seed and its file name, so the same command writes the same files. Score a model on the
    copy with `harness evaluate --data SRC --lr DST`.

    \b
      harness data degrade ../shared/data/bsd100 -o data/bsd100_realesrgan_x4 \\
          --degradation realesrgan --seed 0
    """
    from harness.data.degrade import degrade_folder  # TensorFlow: only `data degrade` needs it

    written = degrade_folder(
        src,
        dst,
        registry(),
        name=degradation,
        params=parse_overrides(overrides),
        scale=scale,
        seed=seed,
        log=(lambda _: None) if quiet else click.echo,
    )
    click.echo(f"{len(written)} LR images (x{scale}, {degradation}, seed {seed}) in {dst}")
