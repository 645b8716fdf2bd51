"""Lossless compression (dgm.tasks.compression): property-based round trips for every
DiscreteAutoregressive model of the contract's variants (tiny, random weights, float64),
identical bytes across batch sizes and thread counts, code length against −log2 p, text,
and the container's refusals (foreign model, truncated, corrupted, wrong magic/version)."""

import math
import struct

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dgm
from contract_models import registered_contract_models
from dgm.model import DiscreteAutoregressive
from dgm.registry import available_models, spec
from dgm.tasks.compression import bits_back as bb
from dgm.tasks.compression import choose_coder, container
from dgm.tasks.compression import range_coding as cz
from dgm.tasks.compression.container import FORMAT_VERSION, ContainerError, model_hash
from helpers import registered
from test_contract import VARIANTS, conditions, in_support


def compressible(name, shape, overrides):
    """A model with discrete conditionals (naive Bayes only with discrete features)."""
    if name.startswith("test_") or not issubclass(spec(name).cls, DiscreteAutoregressive):
        return False
    return dgm.create(name, shape, **overrides).support.is_discrete


with registered(), registered_contract_models():
    DAR = [v for v in VARIANTS if compressible(*v)]
DAR_IDS = [f"{n}-{'-'.join(f'{k}={v}' for k, v in o.items())}" for n, _, o in DAR]


def build(name, shape, overrides, seed=0):
    torch.manual_seed(seed)
    return dgm.create(name, shape, **overrides).double()


def shapes_of(name, shape, overrides):
    """The variant's event shape, and one with a longer last axis where the model takes it."""
    longer = (*shape[:-1], shape[-1] + 1)
    try:
        build(name, longer, overrides)
    except (ValueError, KeyError):
        return [shape]
    return [shape, longer]


def test_every_compressible_model_is_covered():
    names = {n for n, _, _ in DAR}
    able = {n for n in available_models() if issubclass(spec(n).cls, DiscreteAutoregressive)}
    assert names == able and {"fvsbn", "nade", "made", "pixelcnn", "char_rnn", "gpt"} <= names
    assert {"naive_bayes", "bayes_net"} <= names  # tabular data


# -- quantisation ------------------------------------------------------------------------------


def test_frequencies_are_positive_sum_to_the_total_and_follow_softmax():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(200, 7, generator=g, dtype=torch.float64) * 5
    logits[0, 3] = -1e9  # far below the clip: still codable
    f = cz.frequencies(logits)
    assert f.dtype == np.int64 and (f >= 1).all() and (f.sum(-1) == 2**cz.PRECISION).all()
    q = torch.from_numpy(f / 2**cz.PRECISION)
    p = logits.softmax(-1)
    kl = (p * (p.clamp_min(1e-300).log() - q.log())).sum(-1)  # nats lost per symbol
    assert kl.max() < 1e-5


def test_frequencies_ignore_tiny_changes_of_the_logits():
    """Batch sizes and thread counts move logits by an ulp or so (~1e-16 relative); even
    1e-9 relative (10^7 ulps) leaves every frequency of 20 000 rows as it was. (Without
    the rounding to the 2^-10 grid 140 of the rows would change.)"""
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(20000, 4, generator=g, dtype=torch.float64) * 3
    nudged = logits * (1 + 1e-9 * torch.randn(logits.shape, generator=g, dtype=torch.float64))
    assert not torch.equal(nudged, logits)
    assert (cz.frequencies(logits) == cz.frequencies(nudged)).all()


# -- round trips -------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", DAR, ids=DAR_IDS)
@settings(  # derandomized: the same draws on every run (CI), no example database
    max_examples=6,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
@given(data=st.data())
def test_round_trip_is_exact_for_random_inputs_shapes_and_batch_sizes(variant, data):
    name, shape, overrides = variant
    shape = data.draw(st.sampled_from(shapes_of(*variant)), label="shape")
    n = data.draw(st.integers(0, 9), label="n")
    encode_bs, decode_bs = data.draw(st.tuples(*[st.sampled_from([1, 2, 7, 64])] * 2))
    seed = data.draw(st.integers(0, 2**16), label="seed")
    model = build(name, shape, overrides, seed)
    g = torch.Generator().manual_seed(seed)
    x = in_support(model.support, (n, *shape), g)
    c = conditions(model, n, g)
    blob = cz.compress(model, x, c, batch_size=encode_bs)
    out = cz.decompress(model, blob, c, batch_size=decode_bs)
    assert out.dtype == x.dtype and torch.equal(out, x)
    assert blob == cz.compress(model, x, c, batch_size=1 if encode_bs != 1 else 7)


def test_bytes_are_the_same_for_batch_sizes_1_and_7_and_for_1_and_2_threads():
    model = build("pixelcnn", (1, 4, 4), {"hidden_channels": 8, "num_layers": 2})
    x = torch.bernoulli(torch.full((9, 1, 4, 4), 0.4), generator=torch.Generator().manual_seed(2))
    x = x.double()
    one = cz.compress(model, x, batch_size=1)
    assert one == cz.compress(model, x, batch_size=7)
    threads = torch.get_num_threads()
    try:  # two threads: other reduction orders in the convolutions (one call: a busy
        torch.set_num_threads(2)  # machine makes each two-thread call slow)
        two = cz.compress(model, x, batch_size=9)
    finally:
        torch.set_num_threads(threads)
    assert two == one
    assert torch.equal(cz.decompress(model, two, batch_size=1), x)
    assert torch.equal(cz.decompress(model, one, batch_size=4), x)


def test_several_chunks_decode_together_whatever_the_batch_size(monkeypatch):
    """Streams of 3 examples: 10 examples make 4 chunks; batches cut across them."""
    monkeypatch.setattr(cz, "MAX_CHUNK", 3)
    model = build("made", (1, 2, 3), {"hidden_sizes": (16, 8), "ordering": "random"})
    x = torch.bernoulli(torch.full((10, 1, 2, 3), 0.5), generator=torch.Generator().manual_seed(5))
    blob = cz.compress(model, x.double(), batch_size=2)
    assert len(cz.read_header(blob)["chunk_bytes"]) == 4
    assert blob == cz.compress(model, x.double(), batch_size=7)
    for bs in (1, 4, 7, 64):
        assert torch.equal(cz.decompress(model, blob, batch_size=bs), x.double())
    # a conditional model: each chunk codes its own rows' labels
    labelled = build("fvsbn", (1, 2, 3), {"num_classes": 3})
    with torch.no_grad():
        labelled.class_bias.add_(4 * torch.randn(labelled.class_bias.shape).double())
    c = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2, 1])  # each chunk of 3 its own labels
    blob = cz.compress(labelled, x.double(), c, batch_size=2)
    assert len(cz.read_header(blob)["chunk_bytes"]) == 4
    assert torch.equal(cz.decompress(labelled, blob, c, batch_size=4), x.double())
    ideal = cz.nll_bits(labelled, x.double(), c)
    assert cz.payload_bits(blob) < ideal + 4 * 32  # each chunk's labels, not the first's


def test_binary_data_may_come_as_bool_or_bytes_and_come_back_so():
    model = build("fvsbn", (1, 2, 3), {})
    x = torch.rand(4, 1, 2, 3, generator=torch.Generator().manual_seed(0)) < 0.5
    for data in (x, x.to(torch.uint8), x.float()):
        back = cz.decompress(model, cz.compress(model, data))
        assert back.dtype == data.dtype and torch.equal(back, data)


def test_the_callers_model_keeps_its_dtype_and_mode_and_hash():
    model = dgm.create("nade", (1, 2, 2), hidden_size=4)  # float32, training mode
    before = model_hash(model)
    x = torch.ones(3, 1, 2, 2)
    blob = cz.compress(model, x)
    assert model.dtype == torch.float32 and model.training
    assert model_hash(model.double()) == before  # weights are hashed as float64
    assert torch.equal(cz.decompress(model, blob), x)


def test_a_model_that_differs_in_a_buffer_alone_is_another_model():
    """The model id hashes buffers too (a KDE's points, running statistics, masks): a file
    coded with one is refused by a model whose parameters are the same but buffers not."""
    model = dgm.create("made", (1, 2, 2), hidden_sizes=(8,)).double()
    x = torch.ones(3, 1, 2, 2, dtype=torch.float64)
    blob = cz.compress(model, x)
    other = dgm.create("made", (1, 2, 2), hidden_sizes=(8,)).double()
    other.load_state_dict(model.state_dict())
    name, buffer = next(iter(other.named_buffers()))
    with torch.no_grad():
        buffer.copy_(buffer.flip(-1) if buffer.dim() else buffer + 1)
    assert not torch.equal(buffer, dict(model.named_buffers())[name])
    assert model_hash(other) != model_hash(model)
    with pytest.raises(ContainerError, match="another model"):
        cz.decompress(other, blob)


# -- code length -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "shape", "overrides", "n"),
    [
        ("fvsbn", (1, 5, 5), {}, 600),
        ("made", (1, 2, 3), {"hidden_sizes": (16,), "head": "categorical"}, 300),
        ("char_rnn", (12,), {"vocab_size": 6, "hidden_size": 8}, 300),
    ],
)
def test_the_whole_file_costs_the_nll_plus_a_header_of_40_bytes(name, shape, overrides, n):
    """Range coding spends −log2 of the quantised conditionals: within 0.1 % of the NLL
    plus one flush (≤ 64 bits) per chunk; the header adds 40 to 48 bytes, not ~345."""
    model = build(name, shape, overrides, seed=3)
    with torch.no_grad():  # sharpen the random model so the data are compressible
        for p in model.parameters():
            p.mul_(3)
    x = model.sample(n, generator=torch.Generator().manual_seed(4))
    blob = cz.compress(model, x, batch_size=128)
    nll = cz.nll_bits(model, x)
    header = cz.read_header(blob)
    chunks = len(header["chunk_bytes"])
    bits = cz.payload_bits(blob)
    assert abs(bits - nll) <= 0.001 * nll + 64 * chunks, (bits, nll)
    assert 8 * len(blob) == bits + 8 * header["header_bytes"]
    assert 36 <= header["header_bytes"] <= 48
    assert nll > 100 * chunks  # the test means something: the constant is small beside it


# -- text --------------------------------------------------------------------------------------


def test_text_round_trips_exactly_whatever_its_length():
    vocab = "\nab c"
    model = build("gpt", (5,), {"vocab_size": len(vocab), "n_layer": 1, "n_head": 1, "n_embd": 8})
    for text in ("", "a", "ab c\n", "abc cab\n\nba", "b" * 23):
        blob = cz.compress_text(model, text, vocab, batch_size=3)
        assert cz.decompress_text(model, blob, vocab, batch_size=2) == text
    header = cz.read_header(blob)
    assert header["kind"] == "text" and header["count"] == 5 and header["text_tokens"] == 23


def test_text_with_characters_outside_the_vocabulary_is_refused():
    model = build("char_rnn", (4,), {"vocab_size": 3, "hidden_size": 4})
    with pytest.raises(ValueError, match=r"characters \['z'\] that are not in the run's vocab"):
        cz.compress_text(model, "abz", "abc")
    with pytest.raises(ValueError, match="the vocabulary has 2 characters but the model has 3"):
        cz.compress_text(model, "ab", "ab")
    blob = cz.compress_text(model, "abcab", "abc")
    with pytest.raises(ContainerError, match="another vocabulary"):
        cz.decompress_text(model, blob, "bca")


# -- refusals ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def coded():
    model = build("nade", (1, 3, 3), {"hidden_size": 6})
    x = torch.bernoulli(torch.full((10, 1, 3, 3), 0.5), generator=torch.Generator().manual_seed(0))
    return model, x, cz.compress(model, x)


def test_a_file_of_another_model_is_refused(coded):
    _, _, blob = coded
    other = build("nade", (1, 3, 3), {"hidden_size": 6}, seed=1)
    with pytest.raises(ContainerError, match=r"compressed with another model .*NADE"):
        cz.decompress(other, blob)
    with pytest.raises(ContainerError, match="another model"):
        cz.decompress(build("fvsbn", (1, 3, 3), {}), blob)


@pytest.mark.parametrize("cut", [1, 5, 40, 300])
def test_a_truncated_file_is_refused(coded, cut):
    model, _, blob = coded
    with pytest.raises(ContainerError, match="truncated"):
        cz.decompress(model, blob[: len(blob) - cut] if cut < 300 else blob[: cut // 30])


def test_a_corrupted_file_is_refused(coded):
    model, _, blob = coded
    for where in (len(blob) - 2, 20):  # the payload, the header
        bad = bytearray(blob)
        bad[where] ^= 0x10
        with pytest.raises(ContainerError, match="corrupted"):
            cz.decompress(model, bytes(bad))
    with pytest.raises(ContainerError, match="corrupted: 1 bytes follow"):
        cz.decompress(model, blob + b"\0")


def test_wrong_magic_or_version_is_refused(coded):
    model, _, blob = coded
    with pytest.raises(ContainerError, match="not a dgm compressed file"):
        cz.decompress(model, b"PK\3\4" + blob[4:])
    newer = blob[:4] + struct.pack("<H", FORMAT_VERSION + 1) + blob[6:]
    with pytest.raises(ContainerError, match=f"format version {FORMAT_VERSION + 1}"):
        cz.decompress(model, newer)


@pytest.mark.parametrize(
    "fields",
    [
        {"kind": "tensor", "chunk_bytes": [4, 2**30, 0], "c_crc32": 0, "dtype": "bool"},
        {"kind": "text", "chunk_bytes": [8], "text_tokens": 300, "vocab_crc32": 2**32 - 1},
        {"kind": "bits_back", "seed_words_kept": 127, "dtype": "uint8", "count": 2**40},
    ],
)
def test_every_kind_of_header_round_trips_in_a_few_bytes(fields):
    header = {"model_hash": model_hash(build("fvsbn", (1, 2, 2), {})), "count": 7, **fields}
    header |= {"data_crc32": 12345}
    blob = container.pack(header, b"payload")
    got, payload = container.unpack(blob)
    assert payload == b"payload" and got["header_bytes"] == len(blob) - len(payload)
    assert got["model_hash"] == header["model_hash"][:16]
    for key, value in header.items():
        if key != "model_hash":
            assert got[key] == value, key
    assert got.get("c_crc32") == header.get("c_crc32") and got["dtype"] == header.get("dtype")
    assert got["header_bytes"] <= 14 + 11 + 6 + 4 + 4 + 1 + 4 + 15  # prefix, fixed, ...


def test_a_header_that_is_unreadable_is_refused_even_with_a_valid_crc():
    header = {"kind": "tensor", "model_hash": "00" * 32, "count": 1, "chunk_bytes": []}
    body = container.pack(header, b"")[14:]

    def file_of(body):  # a prefix whose CRC matches the body
        return struct.pack("<4sHII", b"DGMZ", FORMAT_VERSION, len(body), container.crc32(body))

    unknown = bytes([len(container.KINDS)]) + body[1:]  # the kind byte
    with pytest.raises(ContainerError, match="corrupted: its header names no known kind"):
        container.unpack(file_of(unknown) + unknown)
    with pytest.raises(ContainerError, match="corrupted: its header ends too early"):
        container.unpack(file_of(body[:-3]) + body[:-3])
    with pytest.raises(ContainerError, match="corrupted: its header has bytes left over"):
        container.unpack(file_of(body + b"\0") + body + b"\0")


def test_conditional_models_need_the_same_c():
    model = build("fvsbn", (1, 2, 2), {"num_classes": 3})
    x = torch.ones(4, 1, 2, 2, dtype=torch.float64)
    c = torch.tensor([0, 1, 2, 0])
    blob = cz.compress(model, x, c)
    assert torch.equal(cz.decompress(model, blob, c), x)
    with pytest.raises(ContainerError, match="pass the same c"):
        cz.decompress(model, blob, torch.tensor([0, 1, 2, 1]))
    with pytest.raises(ValueError, match="is conditional: pass c"):
        cz.decompress(model, blob)
    vae = build("vae", (1, 2, 2), {"latent_dim": 2, "hidden_sizes": (4,), "num_classes": 3})
    blob = bb.compress(vae, x, c)  # bits-back keeps the same promise
    assert torch.equal(bb.decompress(vae, blob, c), x)
    with pytest.raises(ContainerError, match="pass the same c"):
        bb.decompress(vae, blob, torch.tensor([0, 1, 2, 1]))


def test_the_ideal_code_length_of_conditional_data_pairs_each_x_with_its_c():
    """nll_bits in batches smaller than the data: each batch reads its own labels."""
    model = build("fvsbn", (1, 2, 2), {"num_classes": 3})
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(0)).double())
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, 2, (7, 1, 2, 2), generator=g).double()
    c = torch.tensor([0, 1, 2, 2, 1, 0, 2])
    want = -float(model.log_prob(x, c).detach().sum()) / math.log(2)
    for batch_size in (2, 3, 256):
        assert cz.nll_bits(model, x, c, batch_size=batch_size) == pytest.approx(want, rel=1e-12)


def test_naive_bayes_conditionals_mix_the_classes_by_their_posterior():
    """Without c, p(x_d | x_<d) = Σ_y p(y | x_<d) p(x_d | y): the chain rule gives
    log p(x), x_d moves no earlier conditional, and files round-trip."""
    model = build("naive_bayes", (4,), {"num_classes": 3, "feature": "categorical"})
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        logp = torch.randn(model.log_probs.shape, generator=g, dtype=torch.float64)
        model.log_probs.copy_(logp.log_softmax(-1))
        model.log_prior.copy_(torch.randn(3, generator=g, dtype=torch.float64).log_softmax(-1))
    x = torch.randint(0, 2, (50, 4), generator=g)
    logits = model.conditional_logits(x)  # (B, D, V)
    chosen = logits.log_softmax(-1).gather(-1, x[..., None]).squeeze(-1)
    torch.testing.assert_close(chosen.sum(-1), model.log_prob(x))
    changed = x.clone()
    changed[:, 2] = 1 - changed[:, 2]
    assert torch.equal(model.conditional_logits(changed)[:, :3], logits[:, :3])
    assert torch.equal(cz.decompress(model, cz.compress(model, x)), x)
    with pytest.raises(ValueError, match="gaussian features models real x"):
        build("naive_bayes", (2,), {"feature": "gaussian"}).conditional_logits(torch.zeros(1, 2))


def test_models_without_conditionals_and_data_outside_the_support_are_refused():
    with pytest.raises(ValueError, match=r"no per-dimension conditionals .* one of: .*fvsbn"):
        cz.compress(dgm.create("vae", (1, 2, 2)), torch.zeros(1, 1, 2, 2))
    model = build("fvsbn", (1, 2, 2), {})
    with pytest.raises(ValueError, match="outside the support"):
        cz.compress(model, torch.full((1, 1, 2, 2), 0.5))
    with pytest.raises(ValueError, match=r"expected \(batch, 1, 2, 2\)"):
        cz.compress(model, torch.zeros(1, 1, 2, 3))
    assert math.isfinite(cz.nll_bits(model, torch.zeros(2, 1, 2, 2)))


# -- bits-back coding (latent-variable models) -------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        {"hidden_sizes": (8,)},
        {"hidden_sizes": (8,), "decoder": "categorical"},
        {"hidden_sizes": (8,), "num_classes": 3},
    ],
)
def test_bits_back_round_trips_exactly(overrides):
    model = build("vae", (1, 2, 3), {"latent_dim": 3, **overrides})
    g = torch.Generator().manual_seed(0)
    for n in (0, 1, 40, 170):  # chunks of 1 to 10 examples; 170: chunks of 32, the last partial
        x = in_support(model.support, (n, 1, 2, 3), g)
        c = conditions(model, n, g)
        blob = bb.compress(model, x, c)
        out = bb.decompress(model, blob, c)
        assert out.dtype == x.dtype and torch.equal(out, x)


@pytest.mark.parametrize("decoder", ["bernoulli", "categorical"])
def test_bits_back_codes_x_with_the_decoders_probabilities(decoder):
    """The frequencies that code x given z are p(x | z) of the decoder, to the coder's
    precision, for each kind of decoder (the cost test trains a Bernoulli VAE only: a
    categorical one coded with the wrong table would still round-trip)."""
    model = build("vae", (1, 2, 3), {"latent_dim": 2, "hidden_sizes": (8,), "decoder": decoder})
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3)  # peaked conditionals, far from uniform
        z = torch.randn(5, 2, generator=torch.Generator().manual_seed(0), dtype=model.dtype)
        dist = model.decode(z)
        dist = dist.base_dist if hasattr(dist, "base_dist") else dist
        probs = dist.probs.reshape(5 * model.num_dims, -1)  # (b·D, V) or (b·D, 1)
    if decoder == "bernoulli":
        probs = torch.cat([1 - probs, probs], -1)  # (b·D, 2): P(0), P(1)
    got = bb._x_frequencies(model, z, None) / 2**cz.PRECISION
    np.testing.assert_allclose(got, probs.double().numpy(), atol=5e-4)  # the logit grid


def test_bits_back_costs_the_negative_elbo_plus_a_small_constant():
    """BB-ANS spends −log p(x | z) − log p(z) + log q(z | x) per example, −ELBO on average,
    when the bits it borrows look random: true once the aggregate posterior is near the
    prior, so the VAE is trained briefly first (on samples of a random teacher VAE). Only
    the first example borrows from the seed (chunks grow with the examples coded), so the
    start-up cost is a constant: with chunks of 32 from the start, 100 and 500 examples
    borrow 15 words, and 500 cost 11 % over their −ELBO here)."""
    teacher = build("vae", (1, 4, 4), {"latent_dim": 2, "hidden_sizes": (16,)})
    with torch.no_grad():
        for name, p in teacher.named_parameters():
            if "decoder" in name:
                p.mul_(4)
    data = teacher.sample(1500, generator=torch.Generator().manual_seed(1))
    model = build("vae", (1, 4, 4), {"latent_dim": 2, "hidden_sizes": (32,)}, seed=1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(2)
    for _ in range(300):
        loss = model.loss(data[torch.randint(0, 1000, (128,), generator=g)]).value
        opt.zero_grad()
        loss.backward()
        opt.step()
    x = data[1000:]
    cost = {}
    for n in (100, 500):
        blob = bb.compress(model, x[:n])
        with torch.no_grad():
            runs = torch.stack([model.log_prob(x[:n]) for _ in range(50)])
        nelbo = float(-runs.mean(0).sum()) / math.log(2)
        borrowed = len(bb._seed_words(2)) - cz.read_header(blob)["seed_words_kept"]
        cost[n] = cz.payload_bits(blob), nelbo, borrowed
    (bits100, nelbo100, borrowed100), (bits, nelbo, borrowed) = cost[100], cost[500]
    assert 0 < borrowed == borrowed100 <= 2  # one example's borrowing, whatever the count
    assert abs(bits - nelbo) <= 0.01 * nelbo + 96, (bits, nelbo)  # ~8.6 bits per example
    more, more_nelbo = bits - bits100, nelbo - nelbo100  # the 400 further examples
    assert abs(more - more_nelbo) <= 0.01 * more_nelbo, (more, more_nelbo)


def test_bits_back_refuses_other_files_models_and_likelihoods():
    model = build("vae", (1, 2, 2), {"latent_dim": 2, "hidden_sizes": (8,)})
    x = torch.ones(5, 1, 2, 2, dtype=torch.float64)
    blob = bb.compress(model, x)
    other = build("vae", (1, 2, 2), {"latent_dim": 2, "hidden_sizes": (8,)}, seed=1)
    with pytest.raises(ContainerError, match="another model"):
        bb.decompress(other, blob)
    with pytest.raises(ContainerError, match="truncated"):
        bb.decompress(model, blob[:-4])
    with pytest.raises(ContainerError, match="not bits-back coded"):
        bb.decompress(model, cz.compress(build("fvsbn", (1, 2, 2), {}), x))
    with pytest.raises(ValueError, match="needs discrete x"):
        bb.compress(build("vae", (2,), {"decoder": "gaussian"}), torch.zeros(1, 2))
    with pytest.raises(ValueError, match="no latent space"):
        bb.compress(build("fvsbn", (1, 2, 2), {}), x)


# -- the coder for a model ----------------------------------------------------------------------


def test_the_coder_is_range_coding_for_conditionals_and_bits_back_for_a_discrete_vae():
    assert choose_coder(build("fvsbn", (1, 2, 2), {})) == "range"
    assert choose_coder(build("made", (1, 2, 2), {})) == "range"
    assert choose_coder(build("vae", (1, 2, 2), {"latent_dim": 2})) == "bits_back"
    vae = build("vae", (1, 2, 2), {"latent_dim": 2, "decoder": "categorical"})
    assert choose_coder(vae) == "bits_back"


@pytest.mark.parametrize(
    "name, shape, overrides",
    [
        ("gmm", (2,), {}),  # no conditionals, no latent space
        ("vae", (2,), {"decoder": "gaussian"}),  # a latent space, but real x
    ],
)
def test_a_model_no_coder_can_use_is_refused_naming_both_fixes(name, shape, overrides):
    with pytest.raises(ValueError, match=r"one of: .*fvsbn.*; or, by bits-back coding, vae"):
        choose_coder(build(name, shape, overrides))


def test_a_model_that_differs_in_its_config_alone_is_another_model():
    """Weights alike, config not: a logistic-mixture PixelCNN on 16 levels and one on 256
    have the same tensors but another law of x; a file coded with one is refused by the
    other."""
    opts = {"head": "logistic_mixture", "hidden_channels": 3, "num_layers": 1}
    model = build("pixelcnn", (1, 2, 2), {**opts, "num_levels": 16})
    other = build("pixelcnn", (1, 2, 2), {**opts, "num_levels": 256})
    other.load_state_dict(model.state_dict())  # the same names, shapes and values
    x = torch.arange(4).view(1, 1, 2, 2).repeat(3, 1, 1, 1)
    blob = cz.compress(model, x)
    assert torch.equal(cz.decompress(model, blob), x)
    assert model_hash(other) != model_hash(model)
    with pytest.raises(ContainerError, match="another model"):
        cz.decompress(other, blob)
