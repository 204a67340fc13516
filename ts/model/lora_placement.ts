// Where litgpt puts LoRA in its GPT (litgpt/lora.py, era C), seen from TS: which kind of linear layer a
// tensor name belongs to and which LoRA targets that layer carries. The native model and the streaming merge
// place the layers themselves (native/core/lora_placement.h, loraPlacements); this is the same table read
// from the names' side, for saying what an adapter file adapts.
import type { LoraTarget } from './lora_settings.js';

export type LoraLayerKind = 'qkv' | 'projection' | 'mlp' | 'head';

/** The targets that put LoRA on each kind of layer, in litgpt's order. */
export const LAYER_TARGETS: Readonly<Record<LoraLayerKind, readonly LoraTarget[]>> = {
  qkv: ['query', 'key', 'value'], // the fused transformer.h.N.attn.qkv (attn.attn in litgpt ≤ 0.5.4)
  projection: ['projection'], // transformer.h.N.attn.proj
  mlp: ['mlp'], // transformer.h.N.mlp.fc / fc_1 / fc_2 / proj; LLaMAMoE: mlp.gate, mlp.experts.E.fc_1 / fc_2 / proj
  head: ['head'], // lm_head
};

const KINDS = Object.keys(LAYER_TARGETS) as LoraLayerKind[];

/** The kind of layer a parameter name (`transformer.h.0.attn.qkv.lora_A`, `lm_head.weight`) belongs to; null if none carries LoRA. */
export function loraLayerKind(name: string): LoraLayerKind | null {
  if (/^transformer\.h\.\d+\.attn\.(qkv|attn)\./.test(name)) return 'qkv';
  if (/^transformer\.h\.\d+\.attn\.proj\./.test(name)) return 'projection';
  if (/^transformer\.h\.\d+\.mlp\./.test(name)) return 'mlp';
  if (/^lm_head\./.test(name)) return 'head';
  return null;
}

/**
 * What a set of lora_* tensor names adapts, in placement order: 'query/key/value', 'projection', 'mlp', 'head',
 * then any name that is no LoRA layer of a litgpt GPT, as it is.
 */
export function adaptedLayers(names: Iterable<string>): string[] {
  const kinds = new Set<LoraLayerKind>();
  const strays = new Set<string>();
  for (const n of names) {
    const kind = loraLayerKind(n);
    if (kind) kinds.add(kind);
    else strays.add(n);
  }
  return [...KINDS.filter((k) => kinds.has(k)).map((k) => LAYER_TARGETS[k].join('/')), ...strays];
}
