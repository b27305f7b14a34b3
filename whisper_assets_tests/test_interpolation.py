import pytest
import torch

from whisper_assets.training.interpolation import SHARES, choose_share, interpolate, largest_share_within


def test_interpolation_mixes_floating_weights_and_a_trimmed_embedding_with_the_bases_first_rows():
    model = torch.nn.Module()
    model.linear = torch.nn.Linear(2, 2)
    model.positions = torch.nn.Embedding(3, 2)  # trimmed: the base has 5 positions
    model.register_buffer("steps", torch.tensor([7]))
    tuned = {name: torch.full_like(value, 2.0) for name, value in model.state_dict().items()}
    tuned["steps"] = torch.tensor([7])
    base = {
        "linear.weight": torch.zeros(2, 2),
        "linear.bias": torch.zeros(2),
        "positions.weight": torch.arange(10, dtype=torch.float32).reshape(5, 2),
        "steps": torch.tensor([1]),
    }
    interpolate(model, base, tuned, 0.25)
    assert torch.allclose(model.linear.weight, torch.full((2, 2), 0.5))
    expected = 0.75 * base["positions.weight"][:3] + 0.25 * 2.0
    assert torch.allclose(model.positions.weight, expected)
    assert model.steps.item() == 7  # integers are not mixed


@pytest.mark.parametrize(("good_from", "chosen"), [(0.3, 0.3), (0.6, 0.6), (0.9, 0.9), (0.95, 1.0)])
def test_the_smallest_share_within_tolerance_is_chosen_in_few_evaluations(good_from, chosen):
    current = {}

    def apply(share):
        current["share"] = share

    def evaluate():  # WER falls as the share grows: within tolerance from `good_from` on
        return 0.05 if current["share"] >= good_from else 0.5

    share, tried = choose_share(apply, evaluate, tuned_wer=0.05, tolerance=0.01)
    assert share == chosen and current["share"] == chosen
    assert len(tried) <= 3 and set(tried) <= set(SHARES)


@pytest.mark.parametrize(("forgets_from", "chosen"), [(0.35, 0.3), (0.55, 0.5), (0.95, 0.9), (1.5, 1.0)])
def test_the_largest_share_that_forgets_within_the_limit_is_found_in_few_evaluations(forgets_from, chosen):
    current = {}

    def apply(share):
        current["share"] = share

    def evaluate():  # general WER grows with the share: over the limit from `forgets_from` on
        return 0.40 if current["share"] >= forgets_from else 0.33

    share, tried = largest_share_within(apply, evaluate, limit=0.34)
    assert share == chosen and len(tried) <= 3 and set(tried) <= {*SHARES, 1.0}
