"""scikit-learn's bundled 8x8 digits (1797 images, no download), as a fixed split.

Images are scaled to [0, 1] and shaped ``(N, 1, 8, 8)``; the split is stratified and
fixed by ``seed`` so accuracies reported for different models are comparable.
"""
from __future__ import annotations

import torch

__all__ = ["load_digits_split"]


def load_digits_split(test_size: int = 360, seed: int = 0, dtype: torch.dtype = torch.float32
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x_train, y_train, x_test, y_test) from ``sklearn.datasets.load_digits``."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x_tr, x_te, y_tr, y_te = train_test_split(data.images, data.target, test_size=test_size, random_state=seed,
                                              stratify=data.target)

    def images(a):  # noqa: ANN001, ANN202 - numpy in, tensor out
        return torch.as_tensor(a / 16.0, dtype=dtype).unsqueeze(1)

    return images(x_tr), torch.as_tensor(y_tr), images(x_te), torch.as_tensor(y_te)
