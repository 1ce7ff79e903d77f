#include "prompt/placement.h"

#include <fmt/format.h>

#include "core/error.h"

namespace loom::prompt {

std::vector<size_t> find_placeholders(std::string_view text, std::string_view placeholder) {
  std::vector<size_t> positions;
  if (placeholder.empty()) return positions;
  for (size_t at = text.find(placeholder); at != std::string_view::npos; at = text.find(placeholder, at)) {
    positions.push_back(at);
    at += placeholder.size();
  }
  return positions;
}

size_t fallback_position(std::string_view text, std::string_view user_opener, std::string_view bos) {
  if (!user_opener.empty()) {
    const size_t last = text.rfind(user_opener);
    if (last != std::string_view::npos) return last + user_opener.size();
  }
  if (!bos.empty() && text.starts_with(bos)) return bos.size();
  return 0;
}

std::string insert_images_fallback(std::string_view text, const FamilySpec& spec, size_t count, std::string_view bos) {
  const size_t at = fallback_position(text, spec.user_opener, bos);
  std::string out;
  out.reserve(text.size() + count * spec.rendered_image.size());
  out.append(text.substr(0, at));
  for (size_t i = 0; i < count; ++i) out.append(spec.rendered_image);
  out.append(text.substr(at));
  return out;
}

std::string image_block(const FamilySpec& spec, int tokens_per_picture, int crops) {
  std::string one;
  one.reserve(spec.block_open.size() + spec.block_close.size() +
              static_cast<size_t>(tokens_per_picture) * spec.soft_token.size());
  one.append(spec.block_open);
  for (int i = 0; i < tokens_per_picture; ++i) one.append(spec.soft_token);
  one.append(spec.block_close);
  if (crops <= 0) return one;
  // Gemma3Processor's wording for an image with pan-and-scan crops.
  std::string out = "Here is the original image " + one + " and here are some crops to help you see better ";
  for (int i = 0; i < crops; ++i) {
    if (i > 0) out += ' ';
    out += one;
  }
  return out;
}

std::string expand_placeholders(std::string_view text, std::string_view placeholder,
                                const std::vector<std::string>& blocks) {
  const auto positions = find_placeholders(text, placeholder);
  if (positions.size() != blocks.size()) {
    fail(ErrorKind::kInternal, "expand_placeholders: {} placeholders for {} image blocks", positions.size(),
         blocks.size());
  }
  size_t total = text.size();
  for (const auto& block : blocks) total += block.size();
  std::string out;
  out.reserve(total);
  size_t last = 0;
  for (size_t i = 0; i < positions.size(); ++i) {
    out.append(text.substr(last, positions[i] - last));
    out.append(blocks[i]);
    last = positions[i] + placeholder.size();
  }
  out.append(text.substr(last));
  return out;
}

std::string abbreviate_runs(std::string_view text, std::string_view token) {
  if (token.empty()) return std::string(text);
  std::string out;
  size_t at = 0;
  while (at < text.size()) {
    const size_t next = text.find(token, at);
    if (next == std::string_view::npos) break;
    out.append(text.substr(at, next - at));
    size_t count = 0;
    at = next;
    while (text.substr(at, token.size()) == token) {
      at += token.size();
      ++count;
    }
    out.append(token);
    if (count > 1) out += fmt::format("×{}", count);
  }
  out.append(text.substr(at));
  return out;
}

}  // namespace loom::prompt
