// The language-model head fused with cross-entropy: loss = mean over tokens whose target is not −100 of
// logsumexp(logits) − logits[target], where logits = h·Wᵀ + b (+ scaling·(h_lora·Aᵀ)·Bᵀ with a LoRA head).
//
// Why fused: eager PyTorch materialises (tokens × vocab) fp32 logits, their log-softmax and its gradient
// — for 1024 tokens of a 50304 vocabulary that is 206 MB each. Here the logits exist one chunk of rows at
// a time. Because the loss is the end of the graph, its gradient is known up to the scalar that backward
// brings, so the forward pass already turns each chunk's softmax into dL/dh (and dL/dA, dL/dB for a LoRA
// head) and keeps only those (tokens × n_embd); backward scales them. Rows with target −100 are skipped.
// The frozen weight never gets a gradient.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>

namespace litlora::gpt {

struct HeadLoss {
  at::Tensor loss;     // 0-dim float32, differentiable w.r.t. hidden, hiddenLora, loraA, loraB
  int64_t tokens = 0;  // targets that are not −100
};

constexpr int64_t kIgnoreIndex = -100;

// hidden: (N, C) after the final norm; hiddenLora: the LoRA branch's input (dropout(hidden)) or undefined
// for hidden itself; weight (V, C), bias (V) or undefined; loraA (r, C) and loraB (V, r) or undefined;
// targets (N) int64. chunkRows: rows per chunk (0 = pick from the vocabulary size). workspace (optional, CPU):
// a buffer the caller keeps between calls for the chunk's logits, grown here as needed. softcap > 0: the
// logits are tanh(logits / softcap) · softcap (Gemma 2's final_logit_softcapping) before the cross-entropy.
HeadLoss headCrossEntropy(const at::Tensor& hidden, const at::Tensor& hiddenLora, const at::Tensor& weight,
                          const at::Tensor& bias, const at::Tensor& loraA, const at::Tensor& loraB, double scaling,
                          const at::Tensor& targets, int64_t chunkRows = 0, at::Tensor* workspace = nullptr,
                          double softcap = 0.0);

}  // namespace litlora::gpt
