#pragma once
// Where image blocks go in the rendered prompt: THE placement rule (docs/MODELS.md, "Prompt assembly and image
// placement"). The processors of transformers replace the i-th placeholder of the rendered text by the i-th image's
// block, in place, whatever turn it is in; loom does the same. When the template renders no placeholder at all (a
// text-only template), the images go right after the opener of the LAST user turn, contiguous and in request
// order, never before the opener; after BOS only when the prompt has no user-turn opener at all.

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "prompt/family.h"

namespace loom::prompt {

// Byte offsets of the non-overlapping occurrences of `placeholder`, left to right (empty placeholder: none).
std::vector<size_t> find_placeholders(std::string_view text, std::string_view placeholder);

// The byte offset where images go when the template rendered none: just after the last `user_opener`, else just
// after a leading `bos`, else 0.
size_t fallback_position(std::string_view text, std::string_view user_opener, std::string_view bos);

// `text` with `count` copies of the family's rendered image inserted at fallback_position.
std::string insert_images_fallback(std::string_view text, const FamilySpec& spec, size_t count, std::string_view bos);

// What one image becomes: the block (open + soft × tokens + close) for each of its pictures; Gemma 3's
// pan-and-scan gives the original followed by `crops` crops, with the processor's wording around them.
std::string image_block(const FamilySpec& spec, int tokens_per_picture, int crops);

// Replaces the i-th placeholder (from find_placeholders) by blocks[i]. The counts must agree.
std::string expand_placeholders(std::string_view text, std::string_view placeholder,
                                const std::vector<std::string>& blocks);

// For display: each run of `token` repeated n > 1 times becomes "token×n".
std::string abbreviate_runs(std::string_view text, std::string_view token);

}  // namespace loom::prompt
