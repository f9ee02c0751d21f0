// node oidc-provider as the benchmark peer: in-memory adapter (its default),
// client_credentials, introspection and revocation on, JWT access tokens signed
// ES256 through resource indicators, our same client and scope.
//
// Usage: node server.js PORT CLIENT_ID CLIENT_SECRET
// Resources: https://api.test -> ES256 JWT access tokens; https://opaque.test -> opaque.
import { generateKeyPairSync, randomUUID } from "node:crypto";
import Provider from "oidc-provider";

const [port, clientId, clientSecret] = process.argv.slice(2);
const issuer = `http://127.0.0.1:${port}`;
const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
const jwk = { ...privateKey.export({ format: "jwk" }), alg: "ES256", use: "sig", kid: randomUUID() };

const provider = new Provider(issuer, {
  clients: [{
    client_id: clientId,
    client_secret: clientSecret,
    grant_types: ["client_credentials"],
    redirect_uris: [],
    response_types: [],
    scope: "read",
    token_endpoint_auth_method: "client_secret_basic",
    id_token_signed_response_alg: "ES256",
  }],
  jwks: { keys: [jwk] },
  scopes: ["read"],
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => "https://api.test",
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, resource) => ({
        scope: "read",
        audience: resource,
        accessTokenTTL: 900,
        accessTokenFormat: resource === "https://opaque.test" ? "opaque" : "jwt",
        jwt: { sign: { alg: "ES256" } },
      }),
    },
  },
});
provider.listen(Number(port), "127.0.0.1", () => {
  process.stderr.write(`oidc-provider listening on ${issuer}\n`);
});
