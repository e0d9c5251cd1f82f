"The same run, built twice from scratch, is the same run: the same initial LoRA weights and the same weights after training."
import PIL.Image, numpy as np, torch

from imageddpo import I2IDDPOStableDiffusionPipeline, ImageDDPOConfig, ImageDDPOTrainer, pocket_pipeline
from imageddpo.run_config import trainer_from_run_config

def weights(trainer): return {k: v.detach().clone() for k, v in trainer._trainable_state().items()}

def test_two_fresh_yaml_runs_have_identical_weights(tmp_path):
    (tmp_path/"photos").mkdir()
    for i in range(3): PIL.Image.fromarray(np.random.default_rng(i).integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(tmp_path/"photos"/f"{i}.png")
    def run(name):
        torch.manual_seed(len(name))  # whatever the global generator holds beforehand
        spec = dict(model="pocket", images=str(tmp_path/"photos"), image_size=32, prompt="a digit", reward="jpeg_compressibility",
                    config=dict(mixed_precision="no", seed=3, num_epochs=1, sample_num_steps=4, noise_strength=1.0,
                                sample_batch_size=2, train_batch_size=2, sample_guidance_scale=1.0, output_dir=str(tmp_path/name)))
        trainer = trainer_from_run_config(spec)
        initial = weights(trainer); trainer.train()
        return initial, weights(trainer)
    (init_a, final_a), (init_b, final_b) = run("a"), run("bb")
    assert all(torch.equal(init_a[k], init_b[k]) for k in init_a) and all(torch.equal(final_a[k], final_b[k]) for k in final_a)
    assert any(not torch.equal(init_a[k], final_a[k]) for k in init_a)  # it trained

def test_the_python_route_repeats_whatever_the_global_generator(tmp_path):
    finals = []
    for n in (1, 2):
        torch.manual_seed(100 + n)
        config = ImageDDPOConfig(mixed_precision="no", num_epochs=1, sample_num_steps=4, noise_strength=1.0, sample_batch_size=2,
                                 train_batch_size=2, sample_guidance_scale=1.0, output_dir=str(tmp_path/str(n)))
        trainer = ImageDDPOTrainer(config, lambda images, prompts, metadata: images.mean((1, 2, 3)),
                                   lambda: ("a digit", torch.rand(3, 32, 32), {}), I2IDDPOStableDiffusionPipeline(pocket_pipeline()))
        trainer.train(); finals.append(weights(trainer))
    assert all(torch.equal(finals[0][k], finals[1][k]) for k in finals[0])
