"""Tests for the symbolic-domain denoisers (models/)."""

import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

import params  # noqa: E402
from models import CausalUNet, TransformerDenoiser, build_model  # noqa: E402
from models.layers import (CausalConvBlock, CausalDownsample,  # noqa: E402
                           CausalSqueezeExcitation, CausalUpsample, IntervalFeatures,
                           PitchViews, SelfAttentionBlock)
from models.voice import VoiceFeatures  # noqa: E402

SEQ_LEN = 128
FEATURES = 3
BATCH = 2
# Where the perturbation starts: right after the first note, an odd note
# (catches a downsample that leaks note 2j+1 into coarse position j), the
# middle (the coarsest block boundary) and the very last note.
CUT_POINTS = (1, 37, 64, 127)

TINY = params.get_preset("midi_tiny")


def _inputs(batch=BATCH, length=SEQ_LEN, features=FEATURES, seed=0):
    rng = np.random.default_rng(seed)
    x_t = rng.standard_normal((batch, length, features)).astype("float32")
    t = np.array([3.5, 731.25][:batch] + [500.0] * max(batch - 2, 0), "float32")
    return x_t, t


def _tiny_unet(**overrides):
    return build_model(TINY.replace(model="causal_unet", **overrides), FEATURES)


def _tiny_transformer(**overrides):
    return build_model(TINY.replace(model="transformer", **overrides), FEATURES)


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(1234)


def _built(model):
    model([*_inputs()])
    return model


# Eager calls of even a tiny U-Net cost a noticeable fraction of a second on a
# shared CPU, so tests that only read a model share one per module.
@pytest.fixture(scope="module")
def unet():
    keras.utils.set_random_seed(99)
    return _built(_tiny_unet())


@pytest.fixture(scope="module")
def pitch_unet():
    """The U-Net with --pitch_views over all FEATURES channels (one semitone group)."""
    keras.utils.set_random_seed(98)
    return _built(build_model(TINY.replace(model="causal_unet", pitch_views=True),
                              FEATURES, [FEATURES]))


@pytest.fixture(scope="module")
def transformer():
    keras.utils.set_random_seed(99)
    return _built(_tiny_transformer())


MODEL_FIXTURES = pytest.mark.parametrize("model_name", ["unet", "pitch_unet", "transformer"])


def assert_causal(fn, x, cut_points=CUT_POINTS, atol=1e-5, min_change=1e-5, seed=1):
    """Asserts fn's output at notes < k ignores inputs at notes >= k.

    For each k, the inputs at notes >= k are replaced by fresh noise: the
    outputs before k must stay put (causality) and those from k on must move
    (otherwise an input-ignoring fn would pass trivially).
    """
    rng = np.random.default_rng(seed)
    reference = np.asarray(fn(x))
    for k in cut_points:
        perturbed = x.copy()
        perturbed[:, k:] = rng.standard_normal(perturbed[:, k:].shape).astype(x.dtype)
        output = np.asarray(fn(perturbed))
        np.testing.assert_allclose(
            output[:, :k], reference[:, :k], rtol=0, atol=atol,
            err_msg=f"outputs before note {k} changed when notes >= {k} changed")
        change = np.abs(output[:, k:] - reference[:, k:]).max()
        assert change > min_change, (
            f"outputs from note {k} on did not react to the perturbation "
            f"(max change {change:g})")


def _params(model):
    return int(sum(np.prod(w.shape) for w in model.weights))


# --- the checker itself ------------------------------------------------------

def test_causality_checker_detects_same_padded_conv():
    leaky = keras.layers.Conv1D(4, 3, padding="same")
    x = np.random.default_rng(0).standard_normal((BATCH, SEQ_LEN, 4)).astype("float32")
    with pytest.raises(AssertionError, match="outputs before note"):
        assert_causal(leaky, x)


def test_causality_checker_detects_bidirectional_attention():
    leaky = SelfAttentionBlock(num_heads=2, causal=False)
    x = np.random.default_rng(0).standard_normal((BATCH, SEQ_LEN, 8)).astype("float32")
    with pytest.raises(AssertionError, match="outputs before note"):
        assert_causal(lambda v: leaky(v), x)


def test_causality_checker_detects_unreactive_function():
    x = np.random.default_rng(0).standard_normal((BATCH, SEQ_LEN, 4)).astype("float32")
    with pytest.raises(AssertionError, match="did not react"):
        assert_causal(lambda v: np.zeros_like(v), x)


# --- causal building blocks --------------------------------------------------

def _features(channels=8):
    return np.random.default_rng(2).standard_normal((BATCH, SEQ_LEN, channels)).astype("float32")


def test_causal_squeeze_excitation_is_causal():
    layer = CausalSqueezeExcitation(ratio=2)
    assert_causal(lambda v: layer(v), _features())


def test_causal_squeeze_excitation_gates_with_running_mean():
    layer = CausalSqueezeExcitation(ratio=2)
    x = _features()
    output = np.asarray(layer(x))
    running_mean = np.cumsum(x, axis=1) / np.arange(1, SEQ_LEN + 1)[None, :, None]
    gate = np.asarray(layer.excite(layer.squeeze(running_mean)))
    np.testing.assert_allclose(output, x * gate, rtol=1e-5, atol=1e-5)
    assert layer.squeeze.units == 4  # max(8 // 2, min_units=4)


def test_downsample_upsample_pair_is_causal():
    down, up = CausalDownsample(), CausalUpsample()
    x = _features()
    assert down(x).shape == (BATCH, SEQ_LEN // 2, 8)
    assert up(down(x)).shape == x.shape
    # Fine note 127 reads coarse 63, built from notes <= 126: the pair alone
    # cannot react to the last note, so the last cut is one earlier.
    assert_causal(lambda v: up(down(v)), x, cut_points=(1, 37, 64, 126))


def test_upsample_repeats_each_coarse_position_twice():
    coarse = np.arange(2 * 4 * 3, dtype="float32").reshape(2, 4, 3)
    fine = np.asarray(CausalUpsample()(coarse))
    np.testing.assert_array_equal(fine[:, 0::2], coarse)
    np.testing.assert_array_equal(fine[:, 1::2], coarse)


def test_conv_block_is_causal():
    block = CausalConvBlock(channels=12, kernel_size=5, se_ratio=4)
    time_embedding = np.random.default_rng(3).standard_normal((BATCH, 16)).astype("float32")
    assert_causal(lambda v: block(v, time_embedding), _features())


def test_attention_block_is_causal():
    block = SelfAttentionBlock(num_heads=2, causal=True)
    assert_causal(lambda v: block(v), _features())


# --- whole models -------------------------------------------------------------

@MODEL_FIXTURES
def test_output_shape_and_dtype(model_name, request):
    model = request.getfixturevalue(model_name)
    x_t, t = _inputs()
    output = model([x_t, t], training=False)
    assert tuple(output.shape) == (BATCH, SEQ_LEN, FEATURES)
    assert output.dtype == tf.float32
    assert np.isfinite(np.asarray(output)).all()


def test_unet_handles_other_feature_counts():
    features = 4
    model = build_model(TINY, features)
    x_t, t = _inputs(features=features)
    assert tuple(model([x_t, t]).shape) == (BATCH, SEQ_LEN, features)


def test_build_model_picks_the_named_class():
    assert isinstance(_tiny_unet(), CausalUNet)
    assert isinstance(_tiny_transformer(), TransformerDenoiser)
    assert _tiny_transformer(causal=False).causal is False


def test_build_model_rejects_unknown_model():
    with pytest.raises(ValueError, match="unknown model 'wavenet'"):
        build_model(TINY.replace(model="wavenet"), FEATURES)


def test_unet_rejects_indivisible_length():
    with pytest.raises(ValueError, match="divisible by 4"):
        _tiny_unet(seq_len=130)
    model = _tiny_unet(seq_len=None)
    x_t, t = _inputs(length=130)
    with pytest.raises(ValueError, match="divisible by 4"):
        model([x_t, t])


def test_unet_rejects_mismatched_stage_kernels():
    with pytest.raises(ValueError, match="one entry per stage"):
        CausalUNet(FEATURES, stage_channels=(8, 8), stage_kernels=(3,))


def test_causal_unet_is_causal(unet):
    model = unet
    x_t, t = _inputs()
    assert_causal(lambda v: model([v, t], training=False), x_t)


def test_causal_transformer_is_causal(transformer):
    model = transformer
    assert model.causal
    x_t, t = _inputs()
    assert_causal(lambda v: model([v, t], training=False), x_t)


def test_bidirectional_transformer_is_not_causal():
    model = _tiny_transformer(causal=False)
    x_t, t = _inputs()
    with pytest.raises(AssertionError, match="outputs before note"):
        assert_causal(lambda v: model([v, t], training=False), x_t)


def test_bidirectional_unet_sees_every_note_and_has_the_same_weights():
    causal = _tiny_unet()
    model = _tiny_unet(causal=False)
    x_t, t = _inputs()
    with pytest.raises(AssertionError, match="outputs before note"):
        assert_causal(lambda v: model([v, t], training=False), x_t)
    # Note 0's output moves when only the last note changes.
    moved = x_t.copy()
    moved[:, -1] += 1.0
    assert np.abs(np.asarray(model([moved, t]))[:, 0] - np.asarray(model([x_t, t]))[:, 0]).max() > 0
    _built(causal)
    assert [w.shape for w in model.weights] == [w.shape for w in causal.weights]
    assert model.get_config()["causal"] is False and causal.get_config()["causal"] is True


def test_bidirectional_downsample_and_conv_block_read_later_notes():
    x = _features()
    later = x.copy()
    later[:, 1:] += 1.0  # notes after note 0 only
    downsample = CausalDownsample(causal=False)
    block = CausalConvBlock(8, 3, se_ratio=2, causal=False)
    time_embedding = np.zeros((BATCH, 4), "float32")
    for layer in (lambda v: downsample(v), lambda v: block(v, time_embedding)):
        assert np.abs(np.asarray(layer(later))[:, 0] - np.asarray(layer(x))[:, 0]).max() > 1e-3
    assert block.conv1.padding == block.conv2.padding == downsample.conv.padding == "same"


def test_unet_config_saved_before_the_causal_flag_loads_causal(unet):
    config = {k: v for k, v in unet.get_config().items() if k != "causal"}
    assert CausalUNet.from_config(config).causal


def test_bidirectional_squeeze_excitation_gates_with_the_global_mean():
    layer = CausalSqueezeExcitation(ratio=2, causal=False)
    x = _features()
    output = np.asarray(layer(x))
    gate = np.asarray(layer.excite(layer.squeeze(x.mean(axis=1, keepdims=True))))
    np.testing.assert_allclose(output, x * gate, rtol=1e-5, atol=1e-5)


@MODEL_FIXTURES
def test_config_round_trip(model_name, request):
    model = request.getfixturevalue(model_name)
    x_t, t = _inputs()
    expected = np.asarray(model([x_t, t]))
    config = model.get_config()
    json.dumps(config)  # exported next to the weights: must be plain JSON
    clone = model.__class__.from_config(config)
    clone.build([(None, SEQ_LEN, FEATURES), (None,)])
    assert _params(clone) == _params(model)
    clone.set_weights(model.get_weights())
    np.testing.assert_allclose(np.asarray(clone([x_t, t])), expected, rtol=0, atol=1e-6)
    assert clone.get_config() == config


@MODEL_FIXTURES
def test_keras_file_round_trip(model_name, request, tmp_path):
    model = request.getfixturevalue(model_name)
    x_t, t = _inputs()
    path = str(tmp_path / "denoiser.keras")
    model.save(path)
    restored = keras.saving.load_model(path)  # found via the registered names
    assert type(restored) is type(model)
    np.testing.assert_allclose(np.asarray(restored([x_t, t])), np.asarray(model([x_t, t])),
                               rtol=0, atol=1e-6)


@MODEL_FIXTURES
def test_time_conditions_the_output(model_name, request):
    model = request.getfixturevalue(model_name)
    x_t, _ = _inputs()
    outputs = [np.asarray(model([x_t, np.full((BATCH,), t, "float32")]))
               for t in (10.0, 10.5, 900.0)]
    # Fractional times (as DDIM/DPM-Solver use) give their own output.
    assert np.abs(outputs[0] - outputs[1]).max() > 1e-6
    assert np.abs(outputs[0] - outputs[2]).max() > 1e-4


def test_unet_time_projection_is_one_vector_per_channel(unet):
    model = unet
    _, t = _inputs()
    time_embedding = model.time_embedding(t)
    assert tuple(time_embedding.shape) == (BATCH, TINY.time_dim)
    blocks = model.down_blocks + model.mid_blocks + model.up_blocks + [model.output_block]
    for block in blocks:
        projected = block.project_time(time_embedding)
        assert tuple(projected.shape) == (BATCH, 1, block.channels), block.name


def test_unet_time_shift_is_constant_over_notes():
    # Before the first LayerNorm, changing t must move every note by the same
    # per-channel vector (the original tiled-and-reshaped embedding did not).
    block = CausalConvBlock(channels=12, kernel_size=3)
    x = _features()
    rng = np.random.default_rng(4)
    temb_a, temb_b = (rng.standard_normal((BATCH, 16)).astype("float32") for _ in range(2))
    block(x, temb_a)
    pre_norm = [np.asarray(block.conv1(x) + block.project_time(e)) for e in (temb_a, temb_b)]
    shift = pre_norm[1] - pre_norm[0]
    np.testing.assert_allclose(shift, np.broadcast_to(shift[:, :1], shift.shape), atol=1e-5)
    assert np.abs(shift).max() > 1e-3


@pytest.mark.parametrize("make_model", [_tiny_unet, _tiny_transformer],
                         ids=["causal_unet", "transformer"])
def test_runs_in_tf_function_under_distribution_strategy(make_model):
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    x_t, t = _inputs()
    with strategy.scope():
        model = make_model()
        model([x_t, t])
        optimizer = keras.optimizers.Adam(1e-3)
    expected = np.asarray(model([x_t, t], training=False))

    # Unknown batch and length, as when a sampler traces one graph for all.
    predict = tf.function(
        lambda x, times: strategy.run(lambda a, b: model([a, b], training=False),
                                      args=(x, times)),
        input_signature=[tf.TensorSpec([None, None, FEATURES], tf.float32),
                         tf.TensorSpec([None], tf.float32)])
    np.testing.assert_allclose(np.asarray(predict(x_t, t)), expected, rtol=0, atol=1e-5)

    def train_step(x, times):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model([x, times], training=True) - x))
        grads = tape.gradient(loss, model.trainable_variables)
        assert all(g is not None for g in grads)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    # Tracing a whole training-step graph takes tens of seconds on a small
    # CPU, so the step itself runs eagerly.
    assert np.isfinite(float(strategy.run(train_step, args=(x_t, t))))
    assert np.abs(np.asarray(model([x_t, t], training=False)) - expected).max() > 0


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
@MODEL_FIXTURES
def test_mixed_precision_outputs_float32(model_name, policy, request):
    reference_model = request.getfixturevalue(model_name)
    x_t, t = _inputs()
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        # Without its recorded float32 "dtype" the config picks up the policy.
        config = {k: v for k, v in reference_model.get_config().items() if k != "dtype"}
        model = reference_model.__class__.from_config(config)
        model([x_t, t])
    finally:
        keras.mixed_precision.set_global_policy(previous)
    assert model.compute_dtype == policy.split("_")[1]
    assert all(w.dtype == "float32" for w in model.weights)
    model.set_weights(reference_model.get_weights())
    output = model([x_t, t])
    assert output.dtype == tf.float32
    output = np.asarray(output)
    assert np.isfinite(output).all()
    # Same float32 weights: only half-precision rounding separates the runs.
    reference = np.asarray(reference_model([x_t, t]))
    assert np.abs(output - reference).max() < 0.05 * np.abs(reference).max()
    # t = 731.25 has no float16 representation (spacing 0.5 there): if t
    # were autocast, the quarter step would vanish from the output.
    nudged = np.asarray(model([x_t, t - np.float32(0.25)]))
    assert np.abs(nudged - output).max() > 0


# --- parameter budgets ----------------------------------------------------------

def _count(preset_name):
    model = build_model(params.get_preset(preset_name), FEATURES)
    x_t, t = _inputs(batch=1)
    model([x_t, t])
    return model.count_params()


def test_paper_parameter_count():
    n = _count("midi_paper")
    print(f"midi_paper: {n:,} parameters")
    assert 10_000_000 <= n <= 14_000_000


def test_cpu_parameter_count():
    n = _count("midi_cpu")
    print(f"midi_cpu: {n:,} parameters")
    assert 1_000_000 <= n <= 2_000_000


def test_transformer_parameter_count():
    n = _count("midi_transformer")
    print(f"midi_transformer: {n:,} parameters")
    assert 500_000 <= n <= 3_000_000


# --- pitch-class interval features --------------------------------------------

def _pitch_class_codes(classes, width=14):
    """[1, len(classes), width] codes: pitch-class one-hot in {-1, +1} at [0, 12)."""
    codes = -np.ones((1, len(classes), width), "float32")
    codes[0, np.arange(len(classes)), classes] = 1.0
    return codes


def test_interval_features_are_the_intervals_mod_12():
    # C, D, B, C: steps +2, -3 (= 9 mod 12), +1; lag 2: C->B 11, D->C 10.
    layer = IntervalFeatures(lags=2)
    features = np.asarray(layer(_pitch_class_codes([0, 2, 11, 0])))
    assert features.shape == (1, 4, 24) and features.dtype == np.float32
    lag1, lag2 = features[0, :, :12], features[0, :, 12:]
    expected1, expected2 = np.zeros((4, 12)), np.zeros((4, 12))
    expected1[[1, 2, 3], [2, 9, 1]] = 1.0
    expected2[[2, 3], [11, 10]] = 1.0  # the first two notes have no note 2 before
    np.testing.assert_array_equal(lag1, expected1)
    np.testing.assert_array_equal(lag2, expected2)
    # A second group (the x_0 estimate's) starts at channel 14.
    both = IntervalFeatures(lags=1, group_starts=(0, 14))
    doubled = np.concatenate([_pitch_class_codes([0, 2, 11, 0])] * 2, axis=-1)
    np.testing.assert_array_equal(np.asarray(both(doubled)), np.concatenate([lag1] * 2, -1)[None])
    assert both.compute_output_shape((None, 4, 28)) == (None, 4, 24)
    assert IntervalFeatures.from_config(both.get_config()).group_starts == (0, 14)
    with pytest.raises(ValueError, match="lags >= 1"):
        IntervalFeatures(lags=0)


def test_interval_features_are_causal_and_read_soft_codes():
    layer = IntervalFeatures(lags=3)
    x = _features(channels=12)
    assert_causal(lambda v: layer(v), x)
    # Uniform codes (p = 1/2 everywhere): each interval gets 12 * 1/4.
    uniform = np.asarray(layer(np.zeros((1, 5, 12), "float32")))
    np.testing.assert_allclose(uniform[0, 3:], 3.0)


def _clone_from_config(model, x_t, t):
    """Asserts a U-Net rebuilt from model's config computes the same; returns the config."""
    config = model.get_config()
    clone = CausalUNet.from_config(config)
    clone([x_t, t])
    clone.set_weights(model.get_weights())
    np.testing.assert_allclose(np.asarray(clone([x_t, t])), np.asarray(model([x_t, t])),
                               rtol=0, atol=1e-6)
    return config


def test_unet_with_interval_features():
    """x_t and the x_0 estimate each get the features; only the input conv grows."""
    features = 14  # a pitch-class group at [0, 12) of each half
    x_t, t = _inputs(features=2 * features)  # self-conditioned input
    model = build_model(TINY.replace(model="causal_unet", interval_lags=2), features)
    model([x_t, t])
    assert model.interval_features.group_starts == (0, features)
    assert_causal(lambda v: model([v, t], training=False), x_t)
    assert _clone_from_config(model, x_t, t)["interval_lags"] == 2
    without = build_model(TINY.replace(model="causal_unet"), features)
    without([x_t, t])
    # 2 groups x 2 lags x 12 more input channels of the input conv.
    assert _params(model) - _params(without) == (
        2 * 2 * 12 * TINY.input_kernel * TINY.input_channels)


def test_note_attention_adds_residual_blocks_at_note_resolution():
    """With their output layers zeroed the blocks are the identity: the model
    then equals the U-Net without them, weight for weight."""
    x_t, t = _inputs()
    model = _built(_tiny_unet(note_attention=2))
    assert len(model.note_attention_blocks) == 2
    assert_causal(lambda v: model([v, t], training=False), x_t)
    block_weights = {id(w) for block in model.note_attention_blocks for w in block.weights}
    one_block = SelfAttentionBlock(TINY.attention_heads)
    one_block.build((None, SEQ_LEN, TINY.input_channels))
    assert len(block_weights) == 2 * len(one_block.weights)
    assert _params(model) - _params(_built(_tiny_unet())) == 2 * _params(one_block)
    config = _clone_from_config(model, x_t, t)
    assert config["note_attention"] == 2
    # Exports written before the option load without the blocks.
    old = {k: v for k, v in config.items() if k != "note_attention"}
    assert CausalUNet.from_config(old).note_attention == 0

    with_blocks = np.asarray(model([x_t, t]))
    for block in model.note_attention_blocks:
        for layer in (block.attention, block.mlp_output):
            for weight in layer.weights:
                weight.assign(np.zeros(weight.shape, "float32"))
    without = _tiny_unet()
    without([x_t, t])
    without.set_weights([w.numpy() for w in model.weights if id(w) not in block_weights])
    identity = np.asarray(model([x_t, t]))
    np.testing.assert_allclose(identity, np.asarray(without([x_t, t])), rtol=0, atol=1e-6)
    assert np.abs(with_blocks - identity).max() > 1e-4


def test_pitch_views_fold_semitones_into_onehot_codes_and_spread_back():
    views = PitchViews(27)  # 27 semitones: bands of 12, 12 and 3
    assert views.num_bands == 3 and views.num_views == 15
    codes = -np.ones((2, 27), "float32")
    codes[0, 25] = codes[1, 3] = 1.0  # semitone 25: class 1, band 2
    folded = np.asarray(views.fold(codes))
    expected = -np.ones((2, 15), "float32")
    expected[0, [1, 12 + 2]] = expected[1, [3, 12]] = 1.0
    np.testing.assert_array_equal(folded, expected)
    # Soft codes: probabilities (codes + 1) / 2 add up within a class.
    soft = -np.ones((1, 27), "float32")
    soft[0, [2, 14]] = 0.0  # half on semitone 2, half on 14 (both class 2)
    folded = np.asarray(views.fold(soft))[0]
    assert folded[2] == pytest.approx(1.0) and folded[12] == folded[13] == pytest.approx(0.0)
    view_values = np.arange(15, dtype="float32")[None] * 10.0
    spread = np.asarray(views.spread(view_values))[0]
    semitone = np.arange(27)
    np.testing.assert_allclose(spread, 10.0 * (semitone % 12 + 12 + semitone // 12))
    with pytest.raises(ValueError, match="at least 1 semitone"):
        PitchViews(0)


def test_unet_with_pitch_views_is_the_plain_unet_plus_shared_pitch_terms():
    """Views read by the input conv and logits shared by a class or band; with
    those weights zeroed the model is the plain U-Net, weight for weight."""
    features, pitches = 33, 27  # a 27-semitone group (15 views), then 6 other channels
    x_t, t = _inputs(features=2 * features)  # self-conditioned input
    config = TINY.replace(model="causal_unet", encoding="onehot_pitch",
                          prediction="categorical", pitch_views=True)
    model = build_model(config, features, [pitches, 6])
    model([x_t, t])
    assert model.pitch_views == pitches and model.pitch_view_layer.num_views == 15
    assert_causal(lambda v: model([v, t], training=False), x_t)
    assert _clone_from_config(model, x_t, t)["pitch_views"] == pitches
    plain = build_model(TINY.replace(model="causal_unet"), features)
    plain([x_t, t])
    views = model.pitch_view_layer.num_views
    # 2 x 14 view inputs of the input conv, and the 1x1 view projection.
    assert _params(model) - _params(plain) == (
        2 * views * TINY.input_kernel * TINY.input_channels
        + TINY.input_channels * views + views)
    old = {k: v for k, v in model.get_config().items() if k != "pitch_views"}
    assert CausalUNet.from_config(old).pitch_views == 0

    with_views = np.asarray(model([x_t, t]))
    kernel = model.input_conv.kernel
    kernel.assign(np.concatenate([kernel.numpy()[:, :2 * features],
                                  np.zeros((kernel.shape[0], 2 * views, kernel.shape[2]),
                                           "float32")], axis=1))
    for weight in model.view_projection.weights:
        weight.assign(np.zeros(weight.shape, "float32"))
    plain.set_weights([
        w.numpy()[:, :2 * features] if w is kernel else w.numpy() for w in model.weights
        if not any(w is v for v in model.view_projection.weights)])
    np.testing.assert_allclose(np.asarray(model([x_t, t])), np.asarray(plain([x_t, t])),
                               rtol=0, atol=1e-6)
    assert np.abs(with_views - np.asarray(model([x_t, t]))).max() > 1e-4
    with pytest.raises(ValueError, match="one-hot groups"):
        build_model(config, features)


# --- voice features ------------------------------------------------------------

# Beats of the duration and onset-gap classes of a small onehot encoding.
VOICE_DURATIONS = (0.5, 1.0, 2.0)
VOICE_GAPS = (0.0, 0.5, 1.0)
VOICE_OCTAVES = 3
VOICE_GROUPS = (12, VOICE_OCTAVES, len(VOICE_DURATIONS), len(VOICE_GAPS))


def _voice_codes(notes):
    """[1, n, 21] onehot codes of (pitch class, octave, duration, gap) rows."""
    codes = -np.ones((1, len(notes), sum(VOICE_GROUPS)), "float32")
    starts = np.cumsum((0,) + VOICE_GROUPS[:-1])
    for i, (pitch_class, octave, duration, gap) in enumerate(notes):
        indices = (pitch_class, octave, VOICE_DURATIONS.index(duration),
                   VOICE_GAPS.index(gap))
        codes[0, i, starts + np.array(indices)] = 1.0
    return codes


def _voice_layer():
    return VoiceFeatures(VOICE_GROUPS, VOICE_DURATIONS, VOICE_GAPS)


def test_voice_features_give_the_pitch_of_the_notes_ending_at_each_onset():
    # A note is fed by those ending at its onset; octave 1 is C4's.
    notes = [  # pitch class, octave, duration, gap -> onset, end
        (0, 1, 1.0, 0.0),   # C  0    1
        (4, 1, 0.5, 0.0),   # E  0    0.5
        (2, 1, 1.0, 0.5),   # D  0.5  1.5   <- E
        (7, 0, 1.0, 0.5),   # G  1    2     <- C
        (5, 1, 2.0, 0.0),   # F  1    3     <- C
        (11, 0, 0.5, 0.5),  # B  1.5  2     <- D
        (9, 2, 0.5, 1.0),   # A  2.5  3     (nothing ends at 2.5)
        (0, 2, 0.5, 0.5),   # C  3    3.5   <- F and A
    ]
    features = np.asarray(_voice_layer()(_voice_codes(notes)))
    assert features.shape == (1, 8, 12 + VOICE_OCTAVES + 12 + 1)
    assert features.dtype == np.float32
    before_class, before_octave = features[0, :, :12], features[0, :, 12:15]
    intervals, fed = features[0, :, 15:27], features[0, :, 27]
    np.testing.assert_array_equal(fed, [0, 0, 1, 1, 1, 1, 0, 1])
    expected_class = np.zeros((8, 12))
    expected_octave = np.zeros((8, 3))
    expected_interval = np.zeros((8, 12))
    for note, sources, steps in [(2, [4], [(2 - 4) % 12]), (3, [0], [7]), (4, [0], [5]),
                                 (5, [2], [9]), (7, [5, 9], [7, 3])]:
        for source, step in zip(sources, steps):
            expected_class[note, source] += 1.0 / len(sources)
            expected_interval[note, step] += 1.0 / len(sources)
    expected_octave[[2, 3, 4, 5], 1] = 1.0
    expected_octave[7, [1, 2]] = 0.5
    np.testing.assert_allclose(before_class, expected_class, atol=1e-6)
    np.testing.assert_allclose(before_octave, expected_octave, atol=1e-6)
    np.testing.assert_allclose(intervals, expected_interval, atol=1e-6)


def test_voice_features_are_zero_without_an_estimate_and_causal():
    layer = _voice_layer()
    # The first pass's all-zero estimate: every gap 0, every end later.
    np.testing.assert_array_equal(np.asarray(layer(np.zeros((2, 16, 21), "float32"))), 0.0)
    rng = np.random.default_rng(3)
    notes = [(rng.integers(12), rng.integers(3), VOICE_DURATIONS[rng.integers(3)],
              VOICE_GAPS[rng.integers(3)]) for _ in range(64)]
    codes = _voice_codes(notes)
    reference = np.asarray(layer(codes))
    assert reference[0, :, -1].sum() >= 10  # some notes are fed
    for cut in (5, 31, 63):
        changed = codes.copy()
        changed[:, cut:] = rng.standard_normal(changed[:, cut:].shape)
        np.testing.assert_array_equal(np.asarray(layer(changed))[:, :cut], reference[:, :cut])
    clone = VoiceFeatures.from_config(layer.get_config())
    np.testing.assert_array_equal(np.asarray(clone(codes)), reference)
    assert layer.compute_output_shape((None, 64, 21)) == (None, 64, 28)
    with pytest.raises(ValueError, match="2 duration and 3 gap values for groups of 3"):
        VoiceFeatures(VOICE_GROUPS, VOICE_DURATIONS[:2], VOICE_GAPS)
    with pytest.raises(ValueError, match="needs the onehot layout"):
        VoiceFeatures((27, 3, 3), VOICE_DURATIONS, VOICE_GAPS)


def test_unet_with_voice_features_only_widens_the_input_conv():
    features = sum(VOICE_GROUPS)
    config = TINY.replace(model="causal_unet", prediction="categorical",
                          self_condition=True, voice_features=True)
    model = build_model(config, features, list(VOICE_GROUPS), (VOICE_DURATIONS, VOICE_GAPS))
    x_t, t = _inputs(features=2 * features)  # self-conditioned input
    x_t[..., features:] = _voice_codes([(i % 12, i % 3, VOICE_DURATIONS[i % 3],
                                         VOICE_GAPS[i % 2]) for i in range(SEQ_LEN)])
    model([x_t, t])
    assert_causal(lambda v: model([v, t], training=False), x_t)
    saved = _clone_from_config(model, x_t, t)["voice_features"]
    assert saved == {"group_sizes": list(VOICE_GROUPS),
                     "duration_values": list(VOICE_DURATIONS),
                     "gap_values": list(VOICE_GAPS)}
    plain = build_model(TINY.replace(model="causal_unet"), features)
    plain([x_t, t])
    # 28 more input channels of the input conv, nothing else.
    assert _params(model) - _params(plain) == 28 * TINY.input_kernel * TINY.input_channels
    # Zeroing those kernel rows gives the plain U-Net: the features enter there only.
    kernel = model.input_conv.kernel
    with_voice = np.asarray(model([x_t, t]))
    kernel.assign(np.concatenate([kernel.numpy()[:, :2 * features],
                                  np.zeros((kernel.shape[0], 28, kernel.shape[2]), "float32")],
                                 axis=1))
    plain.set_weights([w.numpy()[:, :2 * features] if w is kernel else w.numpy()
                       for w in model.weights])
    np.testing.assert_allclose(np.asarray(model([x_t, t])), np.asarray(plain([x_t, t])),
                               rtol=0, atol=1e-6)
    assert np.abs(with_voice - np.asarray(model([x_t, t]))).max() > 1e-4
    with pytest.raises(ValueError, match="reads the x_0 estimate beside x_t"):
        build_model(config, features, list(VOICE_GROUPS),
                    (VOICE_DURATIONS, VOICE_GAPS))([x_t[..., :features], t])
    with pytest.raises(ValueError, match="one-hot groups and rhythm values"):
        build_model(config, features, list(VOICE_GROUPS))
