// The model config and LoRA settings from JS: the typed object ts/model/native_config.ts makes
// (NativeGptConfig), read field by field into gpt::GptConfig. The one place a config crosses the boundary;
// NativeGpt.create and mergeLoraFiles both take it.
#pragma once

#include <napi.h>

#include <string>

#include "core/gpt_config.h"

namespace litlora {

// Reads every field of a NativeGptConfig (a missing or mistyped one is ERR_CONFIG naming it; nothing is
// defaulted) and checks the result with gpt::checkGptConfig.
gpt::GptConfig gptConfigFromJs(const Napi::Value& value, const std::string& argName);

}  // namespace litlora
