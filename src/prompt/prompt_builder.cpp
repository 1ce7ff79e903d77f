#include "prompt/prompt_builder.h"

#include <fmt/format.h>

#include <exception>
#include <utility>

#include "core/error.h"
#include "prompt/mrope.h"
#include "prompt/placement.h"
#include "weights/snapshot.h"

namespace loom::prompt {
namespace {

// A token named in tokenizer_config.json: a string or an AddedToken object {"content": ...}.
std::optional<std::string> token_text(const nlohmann::json& value) {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_object() && value.contains("content") && value["content"].is_string()) {
    return value["content"].get<std::string>();
  }
  return std::nullopt;
}

int tokens_per_picture_from_config(const nlohmann::json& config) {
  if (config.is_object() && config.contains("mm_tokens_per_image") &&
      config["mm_tokens_per_image"].is_number_integer()) {
    const auto value = config["mm_tokens_per_image"].get<int64_t>();
    if (value < 1 || value > 65536)
      fail(ErrorKind::kInvalidFile, "config.json mm_tokens_per_image {} is out of range", value);
    return static_cast<int>(value);
  }
  return 256;
}

}  // namespace

nlohmann::ordered_json template_special_tokens(const nlohmann::json* tokenizer_config) {
  nlohmann::ordered_json out = nlohmann::ordered_json::object();
  if (!tokenizer_config || !tokenizer_config->is_object()) return out;
  for (const char* key : {"bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"}) {
    if (tokenizer_config->contains(key)) {
      if (auto text = token_text((*tokenizer_config)[key])) out[key] = *text;
    }
  }
  if (tokenizer_config->contains("extra_special_tokens") && (*tokenizer_config)["extra_special_tokens"].is_object()) {
    for (const auto& [key, value] : (*tokenizer_config)["extra_special_tokens"].items()) {
      if (auto text = token_text(value)) out[key] = *text;
    }
  }
  return out;
}

PromptBuilder::PromptBuilder(std::shared_ptr<const text::Tokenizer> tokenizer, PromptSetup setup)
    : tokenizer_(std::move(tokenizer)),
      setup_(std::move(setup)),
      spec_(&family_spec(setup_.family)),
      template_(text::jinja::Template::parse(setup_.chat_template)),
      image_settings_(ImageSettings::from_json(setup_.family, setup_.preprocessor)) {
  if (setup_.special_tokens.contains("bos_token") && setup_.special_tokens["bos_token"].is_string()) {
    bos_ = setup_.special_tokens["bos_token"].get<std::string>();
  }
  if (spec_->family != Family::kTextOnly) {
    for (std::string_view token : {spec_->placeholder, spec_->soft_token}) {
      if (!tokenizer_->token_to_id(token)) {
        fail(ErrorKind::kInvalidFile, "the tokenizer has no {} token, which {} prompts need", token, spec_->name);
      }
    }
    soft_token_id_ = *tokenizer_->token_to_id(spec_->soft_token);
  }
}

PromptBuilder PromptBuilder::from_snapshot(const weights::Snapshot& snapshot) {
  const auto tokenizer_path = snapshot.tokenizer_json();
  if (!tokenizer_path) fail(ErrorKind::kInvalidFile, "{}: no tokenizer.json", snapshot.dir().string());
  if (!snapshot.chat_template()) fail(ErrorKind::kInvalidFile, "{}: no chat template", snapshot.dir().string());
  PromptSetup setup;
  setup.family = detect_family(snapshot.config());
  setup.chat_template = *snapshot.chat_template();
  setup.special_tokens = template_special_tokens(snapshot.tokenizer_config());
  if (const auto* preprocessor = snapshot.preprocessor_config()) setup.preprocessor = *preprocessor;
  setup.image_seq_length = tokens_per_picture_from_config(snapshot.config());
  auto tokenizer = std::make_shared<const text::Tokenizer>(text::Tokenizer::load(snapshot.dir().string()));
  return PromptBuilder(std::move(tokenizer), std::move(setup));
}

std::string PromptBuilder::render(const ChatRequest& request) const {
  // The variables transformers' processor passes: the special tokens, then the call's keyword arguments.
  nlohmann::ordered_json context = setup_.special_tokens;
  for (const auto& [key, value] : request.template_kwargs.items()) context[key] = value;
  context["messages"] = request.messages;
  context["tools"] = request.tools;
  context["documents"] = nullptr;
  context["add_generation_prompt"] = request.add_generation_prompt;
  return template_.render(context);
}

std::vector<ImageSpan> PromptBuilder::find_spans(const std::vector<int32_t>& ids,
                                                 const std::vector<PreparedImage>& images) const {
  std::vector<ImageSpan> spans;
  size_t image = 0;
  int picture = 0;
  for (size_t i = 0; i < ids.size();) {
    if (ids[i] != soft_token_id_) {
      ++i;
      continue;
    }
    size_t end = i;
    while (end < ids.size() && ids[end] == soft_token_id_) ++end;
    const int64_t length = static_cast<int64_t>(end - i);
    if (image >= images.size() || length != images[image].tokens_per_picture) {
      fail(ErrorKind::kInvalidRequest,
           "the prompt text contains image tokens ({}) that belong to no image; they may not be written as text",
           spec_->soft_token);
    }
    spans.push_back({static_cast<int64_t>(i), length, static_cast<int>(image)});
    if (++picture == 1 + images[image].crops) {
      ++image;
      picture = 0;
    }
    i = end;
  }
  if (image != images.size()) {
    fail(ErrorKind::kInternal, "{} of {} images found in the tokenized prompt", image, images.size());
  }
  return spans;
}

PromptIds PromptBuilder::build(const ChatRequest& request, const BuildOptions& options) const {
  const size_t count = request.images.size();
  if (count > 0 && spec_->family == Family::kTextOnly) {
    fail(ErrorKind::kUnsupported, "this model takes no images (the request has {})", count);
  }
  if (count > options.limits.max_images) {
    fail(ErrorKind::kInvalidRequest, "the request has {} images; at most {} are allowed", count,
         options.limits.max_images);
  }
  PromptIds out;
  out.rendered_text = render(request);
  const bool starts_with_bos = !bos_.empty() && std::string_view(out.rendered_text).starts_with(bos_);
  if (count > 0) {
    const size_t placeholders = find_placeholders(out.rendered_text, spec_->placeholder).size();
    if (placeholders == 0) {
      out.rendered_text = insert_images_fallback(out.rendered_text, *spec_, count, bos_);
      out.used_fallback = true;
    } else if (placeholders != count) {
      fail(ErrorKind::kInvalidRequest, "the rendered prompt has {} image placeholders ({}) for {} images", placeholders,
           spec_->placeholder, count);
    }
  }

  ImageRequestOptions image_options;
  image_options.gemma4_max_soft_tokens = request.image_max_tokens.value_or(options.default_image_max_tokens);
  image_options.gemma3_pan_and_scan = request.pan_and_scan;
  image_options.gemma3_tokens_per_picture = setup_.image_seq_length;
  std::vector<PreparedImage> prepared;
  std::vector<std::string> blocks;
  for (size_t i = 0; i < count; ++i) {
    try {
      const vision::Image image = load_image(request.images[i].reference, options.sources);
      prepared.push_back(prepare_image(image, spec_->family, image_settings_, image_options));
    } catch (const Error& error) {
      const ErrorKind kind = error.kind() == ErrorKind::kUnsupported ? error.kind() : ErrorKind::kInvalidRequest;
      fail(kind, "image {} (messages[{}]): {}", i, request.images[i].message, error.what());
    } catch (const std::exception& error) {
      fail(ErrorKind::kInvalidRequest, "image {} (messages[{}]): {}", i, request.images[i].message, error.what());
    }
    blocks.push_back(image_block(*spec_, prepared.back().tokens_per_picture, prepared.back().crops));
  }
  out.text = count > 0 ? expand_placeholders(out.rendered_text, spec_->placeholder, blocks) : out.rendered_text;

  // transformers tokenizes without special tokens when the prompt already starts with BOS (the template wrote it).
  out.ids = tokenizer_->encode(out.text, /*add_special_tokens=*/!starts_with_bos);
  const auto n = static_cast<int64_t>(out.ids.size());
  if (options.limits.context_length > 0 && n > options.limits.context_length) {
    fail(ErrorKind::kContextLength, "the prompt has {} tokens but the context length is {}", n,
         options.limits.context_length);
  }
  if (spec_->family != Family::kTextOnly) out.spans = find_spans(out.ids, prepared);
  out.token_types.assign(out.ids.size(), 0);
  for (const auto& span : out.spans) {
    for (int64_t k = 0; k < span.length; ++k) out.token_types[static_cast<size_t>(span.start + k)] = 1;
  }
  if (spec_->mrope) {
    std::vector<std::array<int64_t, 3>> grids;
    for (const auto& image : prepared)
      grids.push_back({image.pixels.grid_thw[0], image.pixels.grid_thw[1], image.pixels.grid_thw[2]});
    auto positions = mrope_positions(out.token_types, grids, image_settings_.qwen3vl.merge_size);
    out.mrope_positions = std::move(positions.positions);
    out.rope_delta = positions.rope_delta;
  }
  for (auto& image : prepared) out.images.push_back(std::move(image.pixels));
  return out;
}

}  // namespace loom::prompt
