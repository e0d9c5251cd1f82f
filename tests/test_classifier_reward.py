"`classifier_confidence` with a transformers image-classification model (built from config, offline)."
import torch
from transformers import ViTConfig, ViTForImageClassification

from imageddpo.builtin_rewards import classifier_confidence
from imageddpo.rewards import compute_rewards

def test_transformers_classifier_with_preprocess():
    torch.manual_seed(0)
    model = ViTForImageClassification(ViTConfig(image_size=32, patch_size=8, num_labels=10, hidden_size=32,
                                                num_hidden_layers=1, num_attention_heads=2, intermediate_size=37))
    mean = std = torch.tensor([0.5, 0.5, 0.5]).view(1, 3, 1, 1)
    preprocess = lambda x: (torch.nn.functional.interpolate(x, size=(32, 32), mode="bilinear") - mean) / std
    images = torch.rand(4, 3, 64, 64)
    metadata = [{"label": i} for i in (0, 3, 7, 9)]
    rewards, info = compute_rewards(classifier_confidence(model, preprocess), images, [""] * 4, metadata)
    with torch.no_grad(): logits = model(pixel_values=preprocess(images)).logits
    expected = logits.log_softmax(-1)[torch.arange(4), torch.tensor([0, 3, 7, 9])]
    assert torch.allclose(rewards, expected, atol=1e-6) and 0 <= info["accuracy"] <= 1
