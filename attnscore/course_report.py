"""The course report this project reproduces: its setup and its published numbers, one run per
kind (config/config.yaml holds its model and training settings). summary.md prints the numbers
beside ours; README.md quotes them (tests/test_readme.py keeps the two equal)."""

BATCH_SIZE, SEQ_LEN, EPOCHS = 8, 512, 20
SETUP = f"16 GB NVIDIA A4000, fp16 autocast, batch {BATCH_SIZE} x {SEQ_LEN}, WikiText-2, {EPOCHS} epochs, one run."

# Perplexity after the first epoch (train, valid, test), test perplexity after the last epoch
# (None: not published) and training iterations per second.
NUMBERS = {
    "dot": {"train_ppl_1": 484, "valid_ppl_1": 245, "test_ppl_1": 233, "test_ppl_final": 170.7, "iters_per_s": 7.5},
    "euclid": {"train_ppl_1": 485, "valid_ppl_1": 249, "test_ppl_1": 236, "test_ppl_final": None, "iters_per_s": 6.3},
}
