#pragma once
// Chat request → model input: the chat template rendered over the request (as transformers' processor renders it),
// every image's block put in place of the placeholder the template rendered for it (placement.h), the expanded text
// tokenized, and per image its span in the ids and its preprocessed pixels. Qwen3-VL prompts also get their
// three-axis M-RoPE positions. One builder serves many requests concurrently (it is immutable after construction).

#include <array>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "model/model.h"
#include "prompt/chat_request.h"
#include "prompt/family.h"
#include "prompt/image_inputs.h"
#include "text/jinja/template.h"
#include "text/tokenizer.h"

namespace loom::weights {
class Snapshot;
}

namespace loom::prompt {

struct PromptLimits {
  size_t max_images = 16;      // images per request
  int64_t context_length = 0;  // prompt tokens allowed; 0 = unchecked
};

struct BuildOptions {
  PromptLimits limits;
  ImageSourceOptions sources;
  // Gemma 4 soft-token budget per image when the request names none (`--image-max-tokens`); 0: the preprocessor
  // config's.
  int default_image_max_tokens = 0;
};

// Soft tokens [start, start + length) of the ids hold (one picture of) image `image`. Gemma 3 with pan-and-scan
// crops has 1 + crops spans per image, in order: the original, then the crops.
struct ImageSpan {
  int64_t start = 0;
  int64_t length = 0;
  int image = 0;
};

struct PromptIds {
  std::string rendered_text;  // the template's output (after the fallback insertion, when it was needed)
  std::string text;           // with every placeholder expanded: what was tokenized
  std::vector<int32_t> ids;
  std::vector<ImageSpan> spans;
  std::vector<uint8_t> token_types;      // 0 text, 1 image soft token
  std::vector<int64_t> mrope_positions;  // [3, ids.size()] for M-RoPE families, else empty
  int64_t rope_delta = 0;
  std::vector<model::ImagePixels> images;  // request order
  bool used_fallback = false;              // the template rendered no placeholder; images placed by the fallback
};

// What assembly reads from a model snapshot.
struct PromptSetup {
  Family family = Family::kTextOnly;
  std::string chat_template;
  // Variables the template gets besides the request: bos_token, eos_token, ... (tokenizer_config.json's named
  // special tokens, as transformers' special_tokens_map).
  nlohmann::ordered_json special_tokens = nlohmann::ordered_json::object();
  nlohmann::json preprocessor = nlohmann::json::object();  // preprocessor_config.json
  int image_seq_length = 256;                              // Gemma 3 soft tokens per picture
};

// The template variables transformers passes from a tokenizer_config.json (null: none).
nlohmann::ordered_json template_special_tokens(const nlohmann::json* tokenizer_config);

class PromptBuilder {
 public:
  PromptBuilder(std::shared_ptr<const text::Tokenizer> tokenizer, PromptSetup setup);
  // Reads config.json, the tokenizer, the chat template and preprocessor_config.json of a snapshot.
  static PromptBuilder from_snapshot(const weights::Snapshot& snapshot);

  // Throws Error(kInvalidRequest) for bad requests (naming the image index for images that cannot be read),
  // kContextLength when the prompt exceeds limits.context_length, kUnsupported for images to a text-only model.
  PromptIds build(const ChatRequest& request, const BuildOptions& options) const;

  // Only the template step.
  std::string render(const ChatRequest& request) const;

  const FamilySpec& spec() const { return *spec_; }
  const text::Tokenizer& tokenizer() const { return *tokenizer_; }
  // The same tokenizer, for an engine that detokenizes this builder's prompts.
  std::shared_ptr<const text::Tokenizer> shared_tokenizer() const { return tokenizer_; }

 private:
  std::vector<ImageSpan> find_spans(const std::vector<int32_t>& ids, const std::vector<PreparedImage>& images) const;

  std::shared_ptr<const text::Tokenizer> tokenizer_;
  PromptSetup setup_;
  const FamilySpec* spec_;
  text::jinja::Template template_;
  ImageSettings image_settings_;
  std::string bos_;
  int32_t soft_token_id_ = -1;
};

}  // namespace loom::prompt
