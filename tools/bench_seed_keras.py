#!/usr/bin/env python3
"""The seed LSTM seq2seq of `shiftlm bench --config seed-lstm` in Keras
(TensorFlow), the framework the seed issue compares with: vocabulary 1004
(1000 symbols + 4 specials), embedding 256, one LSTM layer of 128 for the
encoder and the decoder, source length 10, batch 64, teacher forcing
(decoder input [BOS]+y, labels y+[EOS]), Adam. Times forward + loss +
backward + update per step (a compiled train step), the median after a
warmup, and prints one JSON line like the other reference scripts.

  python3 tools/bench_seed_keras.py [--threads N] [--steps N]
  (needs tensorflow-cpu: python3 -m venv .venv-keras && .venv-keras/bin/pip install tensorflow-cpu)
"""
import argparse
import json
import os
import time

ap = argparse.ArgumentParser()
ap.add_argument("--threads", type=int, default=1)
ap.add_argument("--steps", type=int, default=30)
ap.add_argument("--warmup", type=int, default=5)
a = ap.parse_args()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

tf.config.threading.set_intra_op_parallelism_threads(a.threads)
tf.config.threading.set_inter_op_parallelism_threads(1)
keras = tf.keras
V, E, H, B, T, BOS, EOS = 1004, 256, 128, 64, 10, 1, 2

src_in = keras.Input((T,), dtype="int32")
dec_in = keras.Input((T + 1,), dtype="int32")
_, h, c = keras.layers.LSTM(H, return_state=True)(keras.layers.Embedding(V, E)(src_in))
y = keras.layers.LSTM(H, return_sequences=True)(keras.layers.Embedding(V, E)(dec_in), initial_state=[h, c])
model = keras.Model([src_in, dec_in], keras.layers.Dense(V)(y))
opt = keras.optimizers.Adam(1e-3)
loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

rng = np.random.default_rng(7)
src = rng.integers(4, 1004, (B, T)).astype("int32")
tgt = np.roll(src, -1, axis=1)  # the rotate task, as in shiftlm's bench
dec = np.concatenate([np.full((B, 1), BOS, "int32"), tgt], 1)
lab = np.concatenate([tgt, np.full((B, 1), EOS, "int32")], 1)


@tf.function
def step(s, d, l):
    with tf.GradientTape() as tape:
        loss = loss_fn(l, model([s, d], training=True))
    grads = tape.gradient(loss, model.trainable_variables)
    opt.apply_gradients(zip(grads, model.trainable_variables))
    return loss


times = []
for i in range(a.warmup + a.steps):
    t0 = time.perf_counter()
    step(src, dec, lab).numpy()
    if i >= a.warmup:
        times.append(time.perf_counter() - t0)
times.sort()
s = times[len(times) // 2]
print(json.dumps({"config": "seed-lstm", "framework": f"keras {keras.__version__} (tensorflow {tf.__version__})",
                  "threads": a.threads, "ms_per_step": 1000 * s, "tokens_per_s": B * T / s}))
