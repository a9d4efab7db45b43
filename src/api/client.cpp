#include <algorithm>
#include "api/client.hpp"

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <ctime>

#include "api/router.hpp"
#include "api/server.hpp"

namespace vigil::api {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;

namespace {

std::string ascii_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

// The single O= of a CA certificate's subject: the cluster it belongs to.
std::optional<std::string> organization(X509* cert) {
  X509_NAME* name = X509_get_subject_name(cert);
  int at = X509_NAME_get_index_by_NID(name, NID_organizationName, -1);
  if (at < 0 || X509_NAME_get_index_by_NID(name, NID_organizationName, at) >= 0) return std::nullopt;
  unsigned char* utf8 = nullptr;
  int len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, at)));
  if (len < 0) return std::nullopt;
  std::string out(reinterpret_cast<char*>(utf8), static_cast<size_t>(len));
  OPENSSL_free(utf8);
  return out;
}

bool idempotent(std::string_view method) { return method == "GET" || method == "PUT" || method == "DELETE"; }

}  // namespace

struct Client::Impl {
  ClientOptions options;
  std::string host, port;
  asio::io_context io{1};
  asio::ssl::context ssl{asio::ssl::context::tls_client};
  std::optional<beast::ssl_stream<beast::tcp_stream>> stream;
  beast::flat_buffer buffer;
  bool reused = false;  // the open connection has answered a request already

  // Set by the verify callback, per handshake.
  std::optional<Error> trust_error;
  std::optional<ca::TlsIdentity> identity;
  std::vector<ca::TlsCertificate> chain;
  std::optional<ca::TlsCertificate> pinned_ca;

  int64_t now() const {
    return options.clock ? options.clock() : static_cast<int64_t>(std::time(nullptr));
  }

  // Runs the io_context until the operation started by start() completes.
  template <class Start>
  beast::error_code run(Start start) {
    beast::error_code result;
    bool done = false;
    start([&](beast::error_code ec, auto&&...) {
      result = ec;
      done = true;
    });
    io.restart();
    while (!done && io.run_one() > 0) {
    }
    return done ? result : beast::error_code(asio::error::operation_aborted);
  }

  int check_server(X509_STORE_CTX* store) {
    trust_error.reset();
    identity.reset();
    chain.clear();
    X509* leaf = X509_STORE_CTX_get0_cert(store);
    STACK_OF(X509)* sent = X509_STORE_CTX_get0_untrusted(store);
    for (int i = 0; sent && i < sk_X509_num(sent); ++i) {
      X509* c = sk_X509_value(sent, i);
      X509_up_ref(c);
      chain.emplace_back(c);
    }
    if (!leaf) {
      trust_error = Error::of(Errc::unauthenticated, "the server at " + options.address + " sent no certificate");
      return 0;
    }
    if (options.insecure) return 1;
    std::vector<ca::TlsCertificate> trusted = options.trusted;
    std::string cluster = options.cluster;
    if (!options.ca_pin.empty()) {
      std::optional<ca::TlsCertificate> found;
      std::string seen;
      for (size_t i = 1; i < chain.size(); ++i) {
        std::string pin = ca::ca_pin(chain[i]);
        if (pin == options.ca_pin) found = chain[i];
        seen += (seen.empty() ? "" : ", ") + pin;
      }
      if (!found) {
        trust_error = Error::of(
            Errc::unauthenticated,
            "the server at " + options.address + " is not the cluster pinned by " + options.ca_pin +
                (seen.empty() ? std::string(" (it sent no CA certificate)") : " (its CA has " + seen + ")") +
                "; check --ca-pin against the auth service's pin (vigil status on the auth server), "
                "or use --insecure for a self-signed proxy you trust");
        return 0;
      }
      auto org = organization(found->get());
      if (!org) {
        trust_error = Error::of(Errc::unauthenticated, "the pinned CA certificate names no single cluster (O=)");
        return 0;
      }
      cluster = *org;
      trusted = {*found};
      pinned_ca = *found;
    }
    auto checked = ca::verify_tls_peer(leaf, trusted, cluster, ca::TlsUsage::server, now());
    if (!checked) {
      Error e = checked.refusal().error();
      e.message = "the server at " + options.address + " failed the certificate check: " + e.message +
                  "; check --ca-pin or the cluster's CA certificate (or use --insecure for a self-signed proxy)";
      trust_error = std::move(e);
      return 0;
    }
    if (!options.server_name.empty()) {
      const auto& id = checked.value();
      bool named = id.name == options.server_name || id.node_name == options.server_name;
      for (const auto& a : id.addresses) named = named || a == options.server_name;
      if (!named) {
        trust_error = Error::of(Errc::unauthenticated,
                                "the server at " + options.address + " is '" + id.name + "', not '" +
                                    options.server_name + "' as expected; check the address");
        return 0;
      }
    }
    identity = checked.value();
    return 1;
  }

  static int verify_callback(X509_STORE_CTX* store, void* arg) {
    return static_cast<Impl*>(arg)->check_server(store);
  }

  void close() {
    if (!stream) return;
    beast::error_code ec;
    beast::get_lowest_layer(*stream).socket().shutdown(tcp::socket::shutdown_both, ec);
    beast::get_lowest_layer(*stream).close();
    stream.reset();
    buffer.clear();
    reused = false;
  }

  Result<void> open() {
    close();
    tcp::resolver resolver(io);
    beast::error_code ec;
    auto endpoints = resolver.resolve(host, port, ec);
    if (ec)
      return Error::of(Errc::unavailable, "cannot resolve the address " + options.address + ": " + ec.message());
    stream.emplace(io, ssl);
    auto& tcp_stream = beast::get_lowest_layer(*stream);
    tcp_stream.expires_after(options.connect_timeout);
    ec = run([&](auto handler) { tcp_stream.async_connect(endpoints, handler); });
    if (ec) {
      stream.reset();
      return Error::of(ec == beast::error::timeout ? Errc::deadline_exceeded : Errc::unavailable,
                       "cannot connect to " + options.address + ": " +
                           (ec == beast::error::timeout ? std::string("timed out") : ec.message()));
    }
    beast::error_code ignored;
    tcp_stream.socket().set_option(tcp::no_delay(true), ignored);
    (void)asio::ip::make_address(host, ignored);
    if (ignored) SSL_set_tlsext_host_name(stream->native_handle(), host.c_str());
    ec = run([&](auto handler) { stream->async_handshake(asio::ssl::stream_base::client, handler); });
    if (ec) {
      stream.reset();
      if (trust_error) return *trust_error;
      return Error::of(ec == beast::error::timeout ? Errc::deadline_exceeded : Errc::unavailable,
                       "the TLS handshake with " + options.address + " failed: " + ec.message());
    }
    tcp_stream.expires_never();
    return {};
  }
};

Client::Client(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Client::~Client() { impl_->close(); }

Result<std::unique_ptr<Client>> Client::connect(ClientOptions options) {
  int modes = (!options.trusted.empty() ? 1 : 0) + (!options.ca_pin.empty() ? 1 : 0) + (options.insecure ? 1 : 0);
  if (modes != 1)
    return Error::of(Errc::invalid_argument,
                     "say how to trust the server: the cluster's CA certificate, a CA pin (--ca-pin), or --insecure "
                     "(exactly one)");
  if (!options.trusted.empty() && options.cluster.empty())
    return Error::of(Errc::invalid_argument, "trusting the server by CA certificate needs the cluster name");
  if (!options.ca_pin.empty() && (options.ca_pin.rfind("sha256:", 0) != 0 || options.ca_pin.size() != 7 + 64))
    return Error::of(Errc::invalid_argument,
                     "the CA pin '" + options.ca_pin + "' is not 'sha256:' and 64 hex digits; copy it again");
  auto impl = std::make_unique<Impl>();
  impl->options = std::move(options);
  const std::string& a = impl->options.address;
  size_t colon = a.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == a.size())
    return Error::of(Errc::invalid_argument, "the address '" + a + "' is not host:port");
  impl->host = a.substr(0, colon);
  impl->port = a.substr(colon + 1);
  if (impl->host.size() > 2 && impl->host.front() == '[' && impl->host.back() == ']')
    impl->host = impl->host.substr(1, impl->host.size() - 2);

  SSL_CTX* ctx = impl->ssl.native_handle();
  SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  SSL_CTX_set_cert_verify_callback(ctx, &Impl::verify_callback, impl.get());
  if (impl->options.key) {
    if (!impl->options.certificate.get() ||
        SSL_CTX_use_certificate(ctx, impl->options.certificate.get()) != 1 ||
        SSL_CTX_use_PrivateKey(ctx, impl->options.key->get()) != 1 || SSL_CTX_check_private_key(ctx) != 1)
      return Error::of(Errc::invalid_argument, "the client certificate and key do not go together");
    impl->options.key = nullptr;
  }
  auto opened = impl->open();
  if (!opened) return opened.error();
  return std::unique_ptr<Client>(new Client(std::move(impl)));
}

Result<Response> Client::call(std::string_view method, std::string_view path,
                              const std::map<std::string, std::string>& query, std::string_view body,
                              std::string_view content_type,
                              const std::map<std::string, std::string>& headers) {
  Impl& c = *impl_;
  std::string target(path);
  char sep = '?';
  for (const auto& [name, value] : query) {
    target += sep;
    target += percent_encode(name) + "=" + percent_encode(value);
    sep = '&';
  }
  http::request<http::string_body> req;
  req.method_string(method);
  req.target(target);
  req.version(11);
  req.set(http::field::host, c.host);
  req.set(http::field::user_agent, "vigil");
  for (const auto& [name, value] : headers) req.set(name, value);
  if (!body.empty() || method == "POST" || method == "PUT") {
    req.set(http::field::content_type, content_type);
    req.body() = std::string(body);
  }
  req.keep_alive(true);
  req.prepare_payload();

  for (int attempt = 0;; ++attempt) {
    if (!c.stream) {
      auto opened = c.open();
      if (!opened) return opened.error();
    }
    bool was_reused = c.reused;
    auto& tcp_stream = beast::get_lowest_layer(*c.stream);
    tcp_stream.expires_after(c.options.request_timeout);
    beast::error_code ec = c.run([&](auto handler) { http::async_write(*c.stream, req, handler); });
    http::response_parser<http::string_body> parser;
    parser.body_limit(c.options.max_response_body);
    parser.header_limit(64 * 1024);
    if (!ec) ec = c.run([&](auto handler) { http::async_read(*c.stream, c.buffer, parser, handler); });
    if (ec) {
      bool nothing_back = !parser.got_some();
      c.close();
      if (was_reused && nothing_back && attempt == 0 && ec != beast::error::timeout && idempotent(method))
        continue;  // the server closed the idle connection: once more on a new one
      if (ec == beast::error::timeout)
        return Error::of(Errc::deadline_exceeded, "the server at " + c.options.address + " did not answer within " +
                                                      std::to_string(c.options.request_timeout.count()) + " ms");
      if (ec == http::error::body_limit)
        return Error::of(Errc::resource_exhausted,
                         "the answer from " + c.options.address + " is larger than " +
                             std::to_string(c.options.max_response_body) + " bytes");
      return Error::of(Errc::unavailable,
                       "the connection to " + c.options.address + " failed: " + ec.message() +
                           (idempotent(method) || nothing_back ? std::string()
                                                               : " (the request may or may not have been done)"));
    }
    tcp_stream.expires_never();
    auto& msg = parser.get();
    Response out;
    out.status = static_cast<int>(msg.result_int());
    for (const auto& field : msg) out.headers[ascii_lower(field.name_string())] = std::string(field.value());
    std::string_view ct = msg[http::field::content_type];
    out.content_type = ascii_lower(ct.substr(0, ct.find(';')));
    out.body = std::move(msg.body());
    if (msg.keep_alive()) c.reused = true;
    else c.close();
    return out;
  }
}

Result<nlohmann::json> Client::call_json(std::string_view method, std::string_view path, const nlohmann::json& body,
                                         const std::map<std::string, std::string>& query) {
  std::string text = body.is_null() ? std::string() : body.dump();
  auto r = call(method, path, query, text, "application/json");
  if (!r) return r.error();
  if (r->status < 200 || r->status > 299) return error_from_response(r->status, r->body);
  if (r->body.empty()) return nlohmann::json();
  auto parsed = nlohmann::json::parse(r->body, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded())
    return Error::of(Errc::internal, "the answer from " + impl_->options.address + " to " + std::string(method) + " " +
                                         std::string(path) + " is not valid JSON");
  return parsed;
}

const std::optional<ca::TlsIdentity>& Client::server_identity() const { return impl_->identity; }
const std::vector<ca::TlsCertificate>& Client::chain() const { return impl_->chain; }
const std::optional<ca::TlsCertificate>& Client::ca() const { return impl_->pinned_ca; }

Result<void> require_server_role(const Client& client, std::string_view address,
                                 std::string_view role) {
  const auto& id = client.server_identity();
  if (id && std::find(id->roles.begin(), id->roles.end(), role) != id->roles.end()) return {};
  return Error::of(Errc::unauthenticated,
                   "the server at " + std::string(address) + " is not the cluster's " +
                       std::string(role) + " service (its certificate " +
                       (id ? "is " + id->name + "'s, without the role " + std::string(role)
                           : std::string("was not checked")) +
                       "): check the address");
}

}  // namespace vigil::api
