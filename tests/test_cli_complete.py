"""`dgm complete` inpaints the first examples of a split with a Completable model; the
masks it builds hide the region they name; runs without the capability, or not of images,
get one line naming why."""

import numpy as np
import pytest
import torch
from PIL import Image

import dgm
from dgm.cli import main
from dgm.data import DataConfig
from dgm.tasks.inpaint import MASKS, completion_grid, image_mask

BASE = ["--steps", "20", "--batch-size", "32", "--device", "cpu"]
BASE += ["--eval-every", "0", "--sample-every", "0"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    made, flow = root / "made", root / "realnvp"
    assert main(["train", "made", "--data", "digits", "--binarize", "static", *BASE,
                 "--out", str(made)]) == 0  # fmt: skip
    assert main(["train", "realnvp", "--data", "digits", "--scale", "byte", "--dequantize",
                 "uniform", *BASE, "--num-couplings", "2", "--hidden-sizes", "16",
                 "--out", str(flow)]) == 0  # fmt: skip
    return made, flow


def cells(img, n, size=8, pad=2, scale=4):
    """The three rows (originals, masked, completions) of an n-column grid of size x size
    images, as pixel values (3, n, size, size)."""
    grid = torch.from_numpy(np.array(img, dtype=np.float32))
    grid = grid[::scale, ::scale]
    step = size + pad
    rows = [[grid[pad + r * step :][:size, pad + i * step :][:, :size] for i in range(n)]
            for r in range(3)]  # fmt: skip
    return torch.stack([torch.stack(row) for row in rows])


@pytest.mark.parametrize("kind", MASKS)
def test_complete_writes_a_picture_for_every_mask(runs, tmp_path, capsys, kind):
    made, _ = runs
    out = tmp_path / "sub" / f"{kind}.png"
    capsys.readouterr()
    assert main(["complete", str(made), "--mask", kind, "-n", "5", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    hidden = int((~image_mask(kind, (5, 1, 8, 8), torch.Generator().manual_seed(0))).sum())
    assert f"filled {hidden} of 320 pixels" in printed and str(out) in printed
    img = Image.open(out)  # 5 columns and 3 rows of 8x8 digits, 2-pixel padding, 4x up
    assert img.mode == "L" and img.size == (4 * (5 * 10 + 2), 4 * (3 * 10 + 2))
    original, masked, completed = cells(img, 5)  # (5, 8, 8) each, values 0..255
    x = DataConfig("digits", binarize="static").load("test").x[:5, 0] * 255
    mask = image_mask(kind, (5, 1, 8, 8), torch.Generator().manual_seed(0))[:, 0]
    assert torch.equal(original, x)
    assert torch.equal(masked[mask], x[mask]) and (masked[~mask] == 128).all()
    assert torch.equal(completed[mask], x[mask])  # what the model saw comes back unchanged
    assert set(completed[~mask].unique().tolist()) <= {0.0, 255.0}


def test_completion_keeps_the_observed_pixels_the_cli_hides(runs):
    made, _ = runs
    model = dgm.load(made)
    x = DataConfig("digits", binarize="static").load("test").x[:6]
    for kind in MASKS:
        mask = image_mask(kind, x.shape, torch.Generator().manual_seed(0))
        out = model.complete(x, mask, generator=torch.Generator().manual_seed(1))
        assert out.shape == x.shape
        assert torch.equal(out[mask], x[mask]), kind
        assert set(out[~mask].unique().tolist()) <= {0.0, 1.0}


def test_the_default_out_is_in_the_run_directory(runs):
    made, _ = runs
    assert main(["complete", str(made), "--mask", "left-half", "-n", "2", "--split", "valid"]) == 0
    assert (made / "complete-left-half.png").is_file()


def test_image_mask_hides_the_named_region():
    shape = (2, 3, 6, 4)  # N, C, H, W
    obs = {k: image_mask(k, shape, torch.Generator().manual_seed(0)) for k in MASKS}
    for kind, mask in obs.items():
        assert mask.shape == shape and mask.dtype == torch.bool
        assert torch.equal(mask, mask[:, :1].expand(shape)), kind  # channels hidden together
    assert obs["bottom-half"][..., :3, :].all() and not obs["bottom-half"][..., 3:, :].any()
    assert not obs["top-half"][..., :3, :].any() and obs["top-half"][..., 3:, :].all()
    assert not obs["left-half"][..., :2].any() and obs["left-half"][..., 2:].all()
    assert obs["right-half"][..., :2].all() and not obs["right-half"][..., 2:].any()
    centre = torch.ones(6, 4, dtype=torch.bool)
    centre[1:4, 1:3] = False  # the central 3 x 2 square (rows 1..3 of 0..5)
    assert torch.equal(obs["center"][0, 0], centre)


def test_the_centre_of_a_wide_image_is_centred_on_both_axes():
    """4 x 8: the centre hides the middle half of the rows (1..2) and of the columns
    (2..5)."""
    hidden = ~image_mask("center", (1, 1, 4, 8))[0, 0]
    assert hidden.nonzero()[:, 0].unique().tolist() == [1, 2]
    assert hidden.nonzero()[:, 1].unique().tolist() == [2, 3, 4, 5] and hidden.sum() == 8


def test_an_odd_sized_image_keeps_its_middle_row_and_column_observed():
    """7 x 7 (odd, and 3 mod 4): each half hides 3 rows or columns at its own edge, the
    middle one observed; the centre hides the 3 x 3 square at rows and columns 2..4."""
    obs = {k: image_mask(k, (1, 1, 7, 7))[0, 0] for k in MASKS if k != "random"}
    hidden = {k: (~m).nonzero().unique(dim=0) for k, m in obs.items()}
    rows = {k: sorted(set(h[:, 0].tolist())) for k, h in hidden.items()}
    cols = {k: sorted(set(h[:, 1].tolist())) for k, h in hidden.items()}
    assert rows["top-half"] == [0, 1, 2] and rows["bottom-half"] == [4, 5, 6]
    assert cols["left-half"] == [0, 1, 2] and cols["right-half"] == [4, 5, 6]
    assert rows["center"] == cols["center"] == [2, 3, 4] and len(hidden["center"]) == 9


def test_image_mask_fractions_and_seeding():
    shape = (64, 1, 28, 28)
    fractions = {k: (~image_mask(k, shape, torch.Generator().manual_seed(0))).float().mean()
                 for k in MASKS}  # fmt: skip
    for kind in ("bottom-half", "top-half", "left-half", "right-half"):
        assert fractions[kind] == 0.5
    assert fractions["center"] == 0.25
    assert abs(fractions["random"] - 0.5) < 0.01
    one = image_mask("random", shape, torch.Generator().manual_seed(3))
    assert torch.equal(one, image_mask("random", shape, torch.Generator().manual_seed(3)))
    assert not torch.equal(one, image_mask("random", shape, torch.Generator().manual_seed(4)))
    odd = image_mask("bottom-half", (1, 1, 7, 5), None)
    assert (~odd).sum() == 3 * 5  # H // 2 rows; the middle row stays observed
    with pytest.raises(ValueError, match="unknown mask"):
        image_mask("diagonal", shape)


def test_completion_grid_rows_are_originals_masked_completions():
    x = torch.arange(10, dtype=torch.float32).view(10, 1, 1, 1) / 10
    mask = torch.tensor([True, False] * 5).view(10, 1, 1, 1)
    done = torch.ones_like(x)
    images, columns = completion_grid(x, mask, done, (0.0, 1.0), columns=4)
    assert columns == 4 and images.shape == (3 * 3 * 4, 1, 1, 1)  # 3 blocks of 3 rows
    rows = images.view(9, 4)
    assert torch.equal(rows[0], x[:4].flatten())
    assert torch.equal(rows[1], torch.tensor([0.0, 0.5, 0.2, 0.5]))  # hidden: mid-grey
    assert torch.equal(rows[2], torch.ones(4))
    assert torch.equal(rows[6, :2], x[8:].flatten()) and (rows[6:, 2:] == 0.5).all()  # pad


def test_a_model_without_the_capability_is_refused(runs, tmp_path, capsys):
    _, flow = runs  # a flow has no complete() (the VAE has: Metropolis-within-Gibbs)
    out = tmp_path / "v.png"
    assert main(["complete", str(flow), "--mask", "center", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dgm complete: error:") and "not Completable" in err
    able = err.split("needs one of: ")[1]  # the Completable models, by name
    assert "pixelcnn" in able and "vae" in able and "realnvp" not in able
    assert err.count("\n") == 1 and not out.exists()


def test_a_run_not_of_images_is_refused(tmp_path, capsys):

    points = tmp_path / "bits.npy"
    np.save(points, (np.random.default_rng(0).random((200, 6)) < 0.5).astype(np.float32))
    run = tmp_path / "bits"
    assert main(["train", "fvsbn", "--data", "tensors", "--data-root", str(points),
                 *BASE[:4], "--out", str(run)]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["complete", str(run), "--mask", "random", "--out", str(tmp_path / "b.png")]) == 2
    err = capsys.readouterr().err
    assert "inpaints images" in err and "(6,)" in err and err.count("\n") == 1


def test_a_bad_mask_is_an_argparse_error(runs, capsys):
    made, _ = runs
    with pytest.raises(SystemExit) as e:
        main(["complete", str(made), "--mask", "diagonal"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "--mask" in err and "invalid choice" in err and "bottom-half" in err
    with pytest.raises(SystemExit):
        main(["complete", str(made)])  # --mask is required
    assert "--mask" in capsys.readouterr().err


def test_colour_pictures_count_filled_pixels_not_sub_pixels(tmp_path, capsys):
    """On RGB pictures the line counts pixels (each hides its three channels together), and
    the picture keeps the observed pixels' colours and greys the hidden ones."""
    rng = np.random.default_rng(0)
    (tmp_path / "pics" / "a").mkdir(parents=True)
    for i in range(30):
        pixels = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(tmp_path / "pics" / "a" / f"{i}.png")
    run, out = tmp_path / "run", tmp_path / "c.png"
    data = ["--data", "images", "--data-root", str(tmp_path / "pics"), "--image-size", "4",
            "--scale", "byte"]  # fmt: skip
    assert main(["train", "pixelcnn", *data, "--head", "categorical", "--hidden-channels", "6",
                 "--num-layers", "2", "--steps", "3", "--batch-size", "8", *BASE[4:],
                 "--out", str(run)]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["complete", str(run), "--mask", "bottom-half", "-n", "3", "--split", "train",
                 "--out", str(out)]) == 0  # fmt: skip
    assert "filled 24 of 48 pixels (50.0 %) in 3 train examples" in capsys.readouterr().out
    img = Image.open(out)  # 3 columns of 4 x 4 pictures, 2-pixel padding, 12x up
    assert img.mode == "RGB" and img.size == (12 * (3 * 6 + 2), 12 * (3 * 6 + 2))
    rgb = np.array(img)
    by_channel = [cells(rgb[..., k], 3, size=4, scale=12) for k in range(3)]
    original, masked, completed = torch.stack(by_channel, -1)  # (3, 4, 4, RGB) each
    x = DataConfig("images", root=str(tmp_path / "pics"), image_size=4, scale="byte")
    x = x.load("train").x[:3].float().permute(0, 2, 3, 1)  # (3, 4, 4, RGB)
    assert torch.equal(original, x)
    assert torch.equal(masked[:, :2], x[:, :2]) and (masked[:, 2:] == 128).all()
    assert torch.equal(completed[:, :2], x[:, :2])
