// Fuzzes the tokenizer loader: the input is a tokenizer.json. A file that loads must then encode and decode without
// crashing; a file that does not must be rejected with loom::Error.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/error.h"
#include "text/detokenizer.h"
#include "text/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  try {
    const auto tokenizer = loom::text::Tokenizer::from_json(input);
    for (const std::string_view text :
         {std::string_view("Hello, world! 123  \n\t"), std::string_view("\xE4\xBD\xA0\xFF<s>"), input.substr(0, 64)}) {
      const auto ids = tokenizer.encode(text, true);
      tokenizer.decode(ids, false);
      loom::text::Detokenizer stream(tokenizer, true);
      for (const auto id : ids) stream.push(id);
      stream.flush();
    }
  } catch (const loom::Error&) {
  }
  return 0;
}
