// The weights of a Hugging Face checkpoint ⇄ litgpt's, tensor by tensor, for each family of hf_config.ts.
//
// Every litgpt tensor is a list of row ranges of Hugging Face tensors and back (native/core/tensor_plan
// streams them): most are a whole tensor renamed; litgpt's fused `attn.qkv` is
//   * Llama / Qwen2: cat(q_proj, k_proj, v_proj) (weights and biases), as litgpt's copy_weights_hf_llama does;
//   * GPT-NeoX: `query_key_value` holds per-head [q_h, k_h, v_h] rows; litgpt's qkv_reassemble regroups them
//     into [all q | all k | all v].
// LLaMAMoE (Mixtral, Qwen3-MoE): the router and every expert's three linears, each a whole tensor renamed.
// The names and row layouts follow litgpt's convert_hf_checkpoint.py / convert_lit_checkpoint.py (the versions
// in Lightning-AI/litgpt of 2026-06).
import type { Config } from '../model/config.js';
import type { HfFamily } from './hf_config.js';

/** Rows [rowStart, rowStart + rows) of the tensor `name` (rows: whole dim 0 when left out). */
export interface RowPiece {
  name: string;
  rowStart?: number;
  rows?: number;
}

/** One output tensor made of row pieces of input tensors, concatenated along dim 0. */
export interface WeightRecipe {
  name: string;
  pieces: RowPiece[];
}

/** Per-layer HF names of a family's linears and norms (`{}` is the layer index). */
interface LayerNames {
  norm1?: string; norm2?: string; proj: string;  // OLMo 2 has neither norm_1 nor norm_2
  qkv?: string;            // GPT-NeoX's fused query_key_value
  fusedQkv?: string;       // Phi-3's qkv_proj: litgpt's [Q|K|V] rows as they are
  gateUp?: string;         // Phi-3's gate_up_proj: [fc_1 | fc_2] rows
  q?: string; k?: string; v?: string;
  normQ?: string; normK?: string;  // Qwen3's per-head q_norm / k_norm (litgpt's attn.norm_q / attn.norm_k)
  postAttention?: string; postMlp?: string;  // Gemma 2's norms on the attention / MLP output
  mlp: Record<string, string>;  // litgpt mlp linear → HF module
}

const NEOX: LayerNames = {
  norm1: 'gpt_neox.layers.{}.input_layernorm', norm2: 'gpt_neox.layers.{}.post_attention_layernorm',
  proj: 'gpt_neox.layers.{}.attention.dense', qkv: 'gpt_neox.layers.{}.attention.query_key_value',
  mlp: { fc: 'gpt_neox.layers.{}.mlp.dense_h_to_4h', proj: 'gpt_neox.layers.{}.mlp.dense_4h_to_h' },
};

const LLAMA: LayerNames = {
  norm1: 'model.layers.{}.input_layernorm', norm2: 'model.layers.{}.post_attention_layernorm',
  proj: 'model.layers.{}.self_attn.o_proj',
  q: 'model.layers.{}.self_attn.q_proj', k: 'model.layers.{}.self_attn.k_proj', v: 'model.layers.{}.self_attn.v_proj',
  mlp: { fc_1: 'model.layers.{}.mlp.gate_proj', fc_2: 'model.layers.{}.mlp.up_proj', proj: 'model.layers.{}.mlp.down_proj' },
};

const QWEN3: LayerNames = { ...LLAMA, normQ: 'model.layers.{}.self_attn.q_norm', normK: 'model.layers.{}.self_attn.k_norm' };

// Gemma 2 (litgpt's copy_weights_gemma_2): HF's post_attention_layernorm is litgpt's post_attention_norm, and
// the norm before the MLP (litgpt's norm_2) is pre_feedforward_layernorm.
const GEMMA2: LayerNames = {
  ...LLAMA, norm2: 'model.layers.{}.pre_feedforward_layernorm', postAttention: 'model.layers.{}.post_attention_layernorm',
  postMlp: 'model.layers.{}.post_feedforward_layernorm',
};

// Phi-3/4 (litgpt's copy_weights_phi for Phi-3): qkv_proj holds litgpt's attn.qkv rows; gate_up_proj is fc_1's rows
// then fc_2's.
const PHI3: LayerNames = {
  ...LLAMA, q: undefined, k: undefined, v: undefined, fusedQkv: 'model.layers.{}.self_attn.qkv_proj',
  gateUp: 'model.layers.{}.mlp.gate_up_proj', mlp: { proj: 'model.layers.{}.mlp.down_proj' },
};

// OLMo 2 (litgpt's copy_weights_olmo2): HF's post_attention_layernorm / post_feedforward_layernorm are litgpt's post
// norms; q_norm / k_norm span all heads.
const OLMO2: LayerNames = {
  ...QWEN3, norm1: undefined, norm2: undefined, postAttention: 'model.layers.{}.post_attention_layernorm',
  postMlp: 'model.layers.{}.post_feedforward_layernorm',
};

// Gemma 3 (litgpt's copy_weights_gemma_3): Gemma 2's names, and Qwen3's per-head q_norm / k_norm.
const GEMMA3: LayerNames = { ...GEMMA2, normQ: QWEN3.normQ, normK: QWEN3.normK };

// Mixtral and Qwen3-MoE: Llama's and Qwen3's attention names; their MLP names depend on the expert count (layerNames).
const LAYER_NAMES: Record<HfFamily['name'], LayerNames> = {
  gpt_neox: NEOX, llama: LLAMA, qwen2: LLAMA, qwen3: QWEN3, gemma2: GEMMA2, gemma3: GEMMA3, mistral: LLAMA, olmo2: OLMO2, phi3: PHI3,
  mixtral: LLAMA, qwen3_moe: QWEN3,
};

// litgpt's LLaMAMoE under `module` (copy_weights_hf_llama): the router `gate`, and each expert's fc_1 / fc_2 / proj
// as HF's per-expert linears (Mixtral: w1 / w3 / w2; Qwen3-MoE: gate_proj / up_proj / down_proj).
function moeNames(module: string, expert: Record<'fc_1' | 'fc_2' | 'proj', string>, nExpert: number): Record<string, string> {
  const out: Record<string, string> = { gate: `${module}.gate` };
  for (let e = 0; e < nExpert; e++) {
    for (const [lit, hf] of Object.entries(expert)) out[`experts.${e}.${lit}`] = `${module}.experts.${e}.${hf}`;
  }
  return out;
}

function layerNames(family: HfFamily, c: Config): LayerNames {
  if (family.name === 'mixtral') {
    return { ...LLAMA, mlp: moeNames('model.layers.{}.block_sparse_moe', { fc_1: 'w1', fc_2: 'w3', proj: 'w2' }, c.n_expert) };
  }
  if (family.name === 'qwen3_moe') {
    return { ...QWEN3, mlp: moeNames('model.layers.{}.mlp', { fc_1: 'gate_proj', fc_2: 'up_proj', proj: 'down_proj' }, c.n_expert) };
  }
  return LAYER_NAMES[family.name];
}

/** The HF names of the embedding, final norm and head. */
export function hfTopNames(family: HfFamily): { wte: string; lnF: string; lmHead: string } {
  return family.name === 'gpt_neox'
    ? { wte: 'gpt_neox.embed_in.weight', lnF: 'gpt_neox.final_layer_norm', lmHead: 'embed_out.weight' }
    : { wte: 'model.embed_tokens.weight', lnF: 'model.norm', lmHead: 'lm_head.weight' };
}

const at = (template: string, i: number) => template.replace('{}', String(i));

/**
 * For GPT-NeoX's fused query_key_value: litgpt's qkv rows as pieces of HF's ('toLitgpt'), or HF's as pieces of
 * litgpt's ('toHf'). A row is a weight's row or a bias's element alike.
 */
export function neoxQkvPieces(c: Config, direction: 'toLitgpt' | 'toHf'): { rowStart: number; rows: number }[] {
  const hs = c.head_size, nh = c.n_head;
  const pieces: { rowStart: number; rows: number }[] = [];
  if (direction === 'toLitgpt') {
    for (let part = 0; part < 3; part++) for (let h = 0; h < nh; h++) pieces.push({ rowStart: h * 3 * hs + part * hs, rows: hs });
  } else {
    for (let h = 0; h < nh; h++) for (let part = 0; part < 3; part++) pieces.push({ rowStart: part * nh * hs + h * hs, rows: hs });
  }
  return pieces;
}

/** The sizes of litgpt's q, k and v row blocks in attn.qkv. */
export function qkvSizes(c: Config): { q: number; k: number; v: number } {
  return { q: c.n_head * c.head_size, k: c.n_query_groups * c.head_size, v: c.n_query_groups * c.head_size };
}

function hasBias(c: Config, what: 'qkv' | 'proj' | 'mlp' | 'norm', family: HfFamily): boolean {
  if (what === 'norm') return family.name === 'gpt_neox';
  if (what === 'qkv') return c.bias || c.attn_bias;
  return c.bias;
}

/**
 * Every litgpt tensor of `c` as pieces of HF tensors, in the model's order. `hasLmHead`: the HF files hold a
 * head; when they do not (tied embeddings), lm_head.weight is left out here and the caller aliases it to
 * transformer.wte.weight, as litgpt's converter stores it.
 */
export function litgptFromHf(c: Config, family: HfFamily, hasLmHead: boolean): WeightRecipe[] {
  const names = layerNames(family, c);
  const top = hfTopNames(family);
  const out: WeightRecipe[] = [{ name: 'transformer.wte.weight', pieces: [{ name: top.wte }] }];
  const suffixes = (what: 'qkv' | 'proj' | 'mlp' | 'norm') => (hasBias(c, what, family) ? ['weight', 'bias'] : ['weight']);
  for (let i = 0; i < c.n_layer; i++) {
    const lit = `transformer.h.${i}`;
    const norm = (litName: string, hf: string | undefined) => {
      if (hf) for (const s of suffixes('norm')) out.push({ name: `${lit}.${litName}.${s}`, pieces: [{ name: `${at(hf, i)}.${s}` }] });
    };
    norm('norm_1', names.norm1);
    for (const s of suffixes('qkv')) {
      if (names.fusedQkv) {
        out.push({ name: `${lit}.attn.qkv.${s}`, pieces: [{ name: `${at(names.fusedQkv, i)}.${s}` }] });
      } else if (names.qkv) {
        const src = `${at(names.qkv, i)}.${s}`;
        out.push({ name: `${lit}.attn.qkv.${s}`, pieces: neoxQkvPieces(c, 'toLitgpt').map((p) => ({ name: src, ...p })) });
      } else {
        out.push({ name: `${lit}.attn.qkv.${s}`, pieces: [names.q!, names.k!, names.v!].map((n) => ({ name: `${at(n, i)}.${s}` })) });
      }
    }
    for (const s of suffixes('proj')) out.push({ name: `${lit}.attn.proj.${s}`, pieces: [{ name: `${at(names.proj, i)}.${s}` }] });
    if (names.normQ && names.normK) {
      for (const s of suffixes('norm')) {
        out.push({ name: `${lit}.attn.norm_q.${s}`, pieces: [{ name: `${at(names.normQ, i)}.${s}` }] });
        out.push({ name: `${lit}.attn.norm_k.${s}`, pieces: [{ name: `${at(names.normK, i)}.${s}` }] });
      }
    }
    norm('post_attention_norm', names.postAttention);
    norm('norm_2', names.norm2);
    if (names.gateUp) {
      for (const s of suffixes('mlp')) {
        for (const [j, litName] of ['fc_1', 'fc_2'].entries()) {
          out.push({ name: `${lit}.mlp.${litName}.${s}`, pieces: [{ name: `${at(names.gateUp, i)}.${s}`, rowStart: j * c.intermediate_size, rows: c.intermediate_size }] });
        }
      }
    }
    for (const [litName, hfName] of Object.entries(names.mlp)) {
      const mlpSuffixes = litName === 'gate' ? ['weight'] : suffixes('mlp');  // litgpt's router has no bias
      for (const s of mlpSuffixes) out.push({ name: `${lit}.mlp.${litName}.${s}`, pieces: [{ name: `${at(hfName, i)}.${s}` }] });
    }
    norm('post_mlp_norm', names.postMlp);
  }
  for (const s of suffixes('norm')) out.push({ name: `transformer.ln_f.${s}`, pieces: [{ name: `${top.lnF}.${s}` }] });
  if (hasLmHead) out.push({ name: 'lm_head.weight', pieces: [{ name: top.lmHead }] });
  return out;
}

/**
 * Every HF tensor as pieces of litgpt tensors (the inverse of litgptFromHf). `tied`: leave lm_head out (the
 * config says tie_word_embeddings).
 */
export function hfFromLitgpt(c: Config, family: HfFamily, tied: boolean): WeightRecipe[] {
  const out: WeightRecipe[] = [];
  const sizes = qkvSizes(c);
  for (const recipe of litgptFromHf(c, family, !tied)) {
    const lit = recipe.name;
    const piece = recipe.pieces[0];
    if (recipe.pieces.length === 1 && piece.rowStart !== undefined) {
      // A row range of a fused HF tensor (Phi-3's gate_up_proj): the HF tensor is its pieces in row order.
      const fused = out.find((o) => o.name === piece.name);
      if (fused) fused.pieces.push({ name: lit });
      else out.push({ name: piece.name, pieces: [{ name: lit }] });
      continue;
    }
    if (lit.includes('.attn.qkv.') && (family.name === 'gpt_neox' || recipe.pieces.length === 3)) {
      if (family.name === 'gpt_neox') {
        out.push({ name: recipe.pieces[0].name, pieces: neoxQkvPieces(c, 'toHf').map((p) => ({ name: lit, ...p })) });
      } else {
        let start = 0;
        for (const [k, piece] of (['q', 'k', 'v'] as const).map((k, j) => [k, recipe.pieces[j]] as const)) {
          out.push({ name: piece.name, pieces: [{ name: lit, rowStart: start, rows: sizes[k] }] });
          start += sizes[k];
        }
      }
      continue;
    }
    out.push({ name: recipe.pieces[0].name, pieces: [{ name: lit }] });
  }
  return out;
}

/** The HF module(s) of a litgpt linear layer path (`transformer.h.3.attn.qkv`, `…mlp.fc_1`, `lm_head`), for adapters. */
export function hfModulesOf(c: Config, family: HfFamily, litPath: string): { module: string; part?: 'q' | 'k' | 'v' }[] {
  if (litPath === 'lm_head') return [{ module: hfTopNames(family).lmHead.replace(/\.weight$/, '') }];
  const m = /^transformer\.h\.(\d+)\.(attn\.qkv|attn\.proj|mlp\.([\w.]+))$/.exec(litPath);
  if (!m) return [];
  const i = Number(m[1]);
  const names = layerNames(family, c);
  // A LoRA on part of Phi-3's fused qkv_proj / gate_up_proj is no module of its own.
  if (names.fusedQkv && (m[2] === 'attn.qkv' || m[3] === 'fc_1' || m[3] === 'fc_2')) return [];
  if (m[2] === 'attn.qkv') {
    if (names.qkv) return [{ module: at(names.qkv, i) }];
    return [{ module: at(names.q!, i), part: 'q' }, { module: at(names.k!, i), part: 'k' }, { module: at(names.v!, i), part: 'v' }];
  }
  if (m[2] === 'attn.proj') return [{ module: at(names.proj, i) }];
  const hf = names.mlp[m[3]];
  return hf ? [{ module: at(hf, i) }] : [];
}
