#include "server/http_server.h"

#include <httplib.h>

#include <csignal>

#include "core/log.h"
#include "server/api_error.h"
#include "server/routes.h"
#include "server/sse.h"

namespace loom::server {
namespace {

using Json = nlohmann::ordered_json;

bool is_anthropic(const std::string& path) {
  return path.rfind("/v1/messages", 0) == 0;
}

void write_error(const httplib::Request& request, httplib::Response& response, const ApiError& error) {
  response.status = error.status;
  response.set_content(is_anthropic(request.path) ? anthropic_error_body(error) : openai_error_body(error),
                       "application/json");
}

// Constant-time comparison: how much of a wrong key matched must not show in the time taken.
bool same_key(const std::string& given, const std::string& expected) {
  unsigned char diff = given.size() == expected.size() ? 0 : 1;
  for (size_t i = 0; i < given.size(); ++i) {
    diff |= static_cast<unsigned char>(given[i] ^ expected[i % expected.size()]);
  }
  return diff == 0;
}

std::string bearer(const httplib::Request& request) {
  const auto value = request.get_header_value("Authorization");
  constexpr std::string_view kPrefix = "Bearer ";
  if (value.size() > kPrefix.size() && std::equal(kPrefix.begin(), kPrefix.end(), value.begin(), [](char a, char b) {
        return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b));
      })) {
    return value.substr(kPrefix.size());
  }
  return {};
}

// The route's name for metrics (fixed set, so clients cannot grow the label space).
std::string route_label(const httplib::Request& request) {
  const std::string& path = request.path;
  static const char* kFixed[] = {"/health",    "/metrics",        "/tokenize",    "/detokenize",
                                 "/v1/models", "/v1/completions", "/v1/messages", "/v1/chat/completions"};
  for (const char* fixed : kFixed) {
    if (path == fixed) return fixed;
  }
  if (path.rfind("/v1/models/", 0) == 0) {
    for (const char* suffix : {"/load", "/unload", "/status"}) {
      const std::string s = suffix;
      if (path.size() > s.size() && path.compare(path.size() - s.size(), s.size(), s) == 0) {
        return "/v1/models/{id}" + s;
      }
    }
    return "/v1/models/{id}";
  }
  return "other";
}

Json parse_body(const httplib::Request& request) {
  if (request.body.empty()) fail_param("", "the request body is empty: send a JSON object");
  auto body = Json::parse(request.body, nullptr, false);
  if (body.is_discarded()) fail_param("", "the request body is not valid JSON");
  if (!body.is_object()) fail_param("", "the request body must be a JSON object");
  return body;
}

void send(httplib::Response& response, Reply reply) {
  response.status = reply.status;
  if (!reply.stream) {
    response.set_content(reply.body, reply.content_type);
    return;
  }
  response.set_header("Cache-Control", "no-cache");
  response.set_header("X-Accel-Buffering", "no");
  auto stream = std::move(reply.stream);
  auto on_close = std::move(reply.on_close);
  auto ok = std::make_shared<bool>(true);
  response.set_chunked_content_provider(
      reply.content_type,
      [stream, ok](size_t, httplib::DataSink& sink) {
        stream([&](std::string_view piece) {
          if (!*ok) return false;
          if (!sink.is_writable() || !sink.write(piece.data(), piece.size())) *ok = false;
          return *ok;
        });
        if (*ok) sink.done();
        return *ok;
      },
      [on_close, ok](bool success) {
        if (on_close) on_close(success && *ok);
      });
}

}  // namespace

HttpServer::HttpServer(ModelRegistry& registry, HttpOptions options)
    : registry_(registry),
      options_(std::move(options)),
      context_{.registry = registry, .metrics = metrics_, .limits = options_.limits},
      http_(std::make_unique<httplib::Server>()) {
  // A client that disconnects mid-stream must fail the write, not kill the process.
  std::signal(SIGPIPE, SIG_IGN);
  const int threads = std::max(options_.threads, 2);
  http_->new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  http_->set_payload_max_length(options_.max_body_bytes);
  http_->set_read_timeout(60);
  http_->set_write_timeout(60);
  install_routes();
}

HttpServer::~HttpServer() {
  stop();
}

int HttpServer::bind() {
  if (options_.port == 0) {
    port_ = http_->bind_to_any_port(options_.host);
  } else {
    port_ = http_->bind_to_port(options_.host, options_.port) ? options_.port : -1;
  }
  if (port_ < 0) fail(ErrorKind::kInvalidRequest, "cannot listen on {}:{}", options_.host, options_.port);
  return port_;
}

void HttpServer::serve() {
  if (context_.stopping) return;  // stopped before serving began
  http_->listen_after_bind();
}

void HttpServer::stop() {
  context_.stopping = true;
  if (http_) http_->stop();
}

void HttpServer::install_routes() {
  auto& http = *http_;

  // Auth and CORS before routing; everything but /health needs the key when one is set.
  http.set_pre_routing_handler([this](const httplib::Request& request, httplib::Response& response) {
    if (!options_.cors_origins.empty()) {
      const auto origin = request.get_header_value("Origin");
      const bool any =
          std::find(options_.cors_origins.begin(), options_.cors_origins.end(), "*") != options_.cors_origins.end();
      if (!origin.empty() && (any || std::find(options_.cors_origins.begin(), options_.cors_origins.end(), origin) !=
                                         options_.cors_origins.end())) {
        response.set_header("Access-Control-Allow-Origin", any ? "*" : origin);
        response.set_header("Vary", "Origin");
        if (request.method == "OPTIONS") {
          response.set_header("Access-Control-Allow-Methods", "GET, POST, OPTIONS");
          response.set_header("Access-Control-Allow-Headers",
                              "Authorization, Content-Type, x-api-key, anthropic-version, anthropic-beta");
          response.set_header("Access-Control-Max-Age", "600");
          response.status = 204;
          return httplib::Server::HandlerResponse::Handled;
        }
      }
    }
    if (!options_.api_key.empty() && request.path != "/health") {
      std::string key = bearer(request);
      if (key.empty()) key = request.get_header_value("x-api-key");
      if (!same_key(key, options_.api_key)) {
        write_error(request, response,
                    api_error(401, key.empty() ? "Missing API key: send it as 'Authorization: Bearer KEY' or "
                                                 "'x-api-key: KEY'"
                                               : "Incorrect API key provided"));
        return httplib::Server::HandlerResponse::Handled;
      }
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });

  // Errors httplib produces itself (unknown route, body over the cap, bad request line) get our envelope; replies
  // that already carry a body keep it.
  http.set_error_handler([](const httplib::Request& request, httplib::Response& response) {
    if (!response.body.empty() || response.is_chunked_content_provider_) return;
    std::string message;
    switch (response.status) {
      case 404:
        message = fmt::format("Unknown route: {} {}", request.method, request.path);
        break;
      case 413:
        message = "The request body is too large";
        break;
      default:
        message = fmt::format("HTTP {}", response.status);
    }
    write_error(request, response, api_error(response.status, message));
  });

  http.set_exception_handler([](const httplib::Request& request, httplib::Response& response, std::exception_ptr ep) {
    try {
      std::rethrow_exception(ep);
    } catch (const Error& e) {
      write_error(request, response, api_error(e));
    } catch (const std::exception& e) {
      log::error("{} {}: {}", request.method, request.path, e.what());
      write_error(request, response, api_error(500, fmt::format("internal error: {}", e.what())));
    } catch (...) {
      write_error(request, response, api_error(500, "internal error"));
    }
  });

  http.set_logger([this](const httplib::Request& request, const httplib::Response& response) {
    metrics_.count_request(route_label(request), response.status);
    log::info("{} {} {} {}", request.remote_addr, request.method, request.path, response.status);
  });

  const auto json_route = [this](Reply (*handler)(ServerContext&, const Json&)) {
    return [this, handler](const httplib::Request& request, httplib::Response& response) {
      send(response, handler(context_, parse_body(request)));
    };
  };
  http.Post("/v1/chat/completions", json_route(&chat_completions));
  http.Post("/v1/completions", json_route(&completions));
  http.Post("/v1/messages", json_route(&anthropic_messages));
  http.Post("/tokenize", json_route(&tokenize));
  http.Post("/detokenize", json_route(&detokenize));

  http.Get("/health", [this](const httplib::Request&, httplib::Response& response) {
    const bool loading = !registry_.ready();
    response.status = loading ? 503 : 200;
    response.set_content(dump_json(Json{{"status", loading ? "loading" : "ok"}}), "application/json");
  });
  http.Get("/metrics", [this](const httplib::Request&, httplib::Response& response) {
    std::vector<EngineGauges> engines;
    for (const auto& model : registry_.loaded()) engines.push_back({model->id, model->engine->stats()});
    response.set_content(metrics_.text(engines, registry_.ids().size()), "text/plain; version=0.0.4");
  });
  http.Get("/v1/models",
           [this](const httplib::Request&, httplib::Response& response) { send(response, list_models(context_)); });
  // Model ids are single path segments (folder names).
  http.Get(R"(/v1/models/([^/]+)/status)", [this](const httplib::Request& request, httplib::Response& response) {
    send(response, model_status(context_, request.matches[1]));
  });
  http.Get(R"(/v1/models/([^/]+))", [this](const httplib::Request& request, httplib::Response& response) {
    send(response, get_model(context_, request.matches[1]));
  });
  http.Post(R"(/v1/models/([^/]+)/load)", [this](const httplib::Request& request, httplib::Response& response) {
    send(response, load_model(context_, request.matches[1]));
  });
  http.Post(R"(/v1/models/([^/]+)/unload)", [this](const httplib::Request& request, httplib::Response& response) {
    send(response, unload_model(context_, request.matches[1]));
  });
}

}  // namespace loom::server
