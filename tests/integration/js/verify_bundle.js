// Verify a Sigstore bundle with sigstore-js (@sigstore/verify), an implementation independent of
// sigstore-python. Usage: node verify_bundle.js TRUSTED_ROOT.json BUNDLE.json IDENTITY ISSUER [ARTIFACT]
// Prints "OK" and exits 0, or prints the verifier's error code and message and exits 1.
"use strict";
const fs = require("fs");
const { bundleFromJSON } = require("@sigstore/bundle");
const { TrustedRoot } = require("@sigstore/protobuf-specs");
const { Verifier, toSignedEntity, toTrustMaterial } = require("@sigstore/verify");

const [rootPath, bundlePath, identity, issuer, artifactPath] = process.argv.slice(2);
try {
  const root = TrustedRoot.fromJSON(JSON.parse(fs.readFileSync(rootPath, "utf8")));
  const bundle = bundleFromJSON(JSON.parse(fs.readFileSync(bundlePath, "utf8")));
  const artifact = artifactPath ? fs.readFileSync(artifactPath) : undefined;
  const verifier = new Verifier(toTrustMaterial(root), { tlogThreshold: 1, ctlogThreshold: 1, timestampThreshold: 1 });
  verifier.verify(toSignedEntity(bundle, artifact), { subjectAlternativeName: identity, extensions: { issuer } });
  console.log("OK");
} catch (err) {
  console.log(`${err.code || err.name}: ${err.message}`);
  process.exit(1);
}
