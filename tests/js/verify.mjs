// Independent verification of a Sigstore bundle with sigstore-js (@sigstore/verify), test-only.
//
// usage: node verify.mjs --bundle B.sigstore.json [--trusted-root TR.json]
//                        (--identity SAN --issuer URL | --identity-regex RE --issuer URL | --public-key KEY.pem)
// Prints one JSON object; exit 0 verified, 1 refused, 2 usage error.
import { readFileSync } from 'node:fs';
import { createPublicKey } from 'node:crypto';
import { parseArgs } from 'node:util';
import { bundleFromJSON } from '@sigstore/bundle';
import { TrustedRoot } from '@sigstore/protobuf-specs';
import { Verifier, toSignedEntity, toTrustMaterial } from '@sigstore/verify';

const EMPTY_ROOT = {
  mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1',
  tlogs: [], certificateAuthorities: [], ctlogs: [], timestampAuthorities: [],
};

function out(obj, code) {
  process.stdout.write(JSON.stringify(obj) + '\n');
  process.exit(code);
}

let args;
try {
  ({ values: args } = parseArgs({
    options: {
      bundle: { type: 'string' },
      'trusted-root': { type: 'string' },
      identity: { type: 'string' },
      'identity-regex': { type: 'string' },
      issuer: { type: 'string' },
      'public-key': { type: 'string' },
    },
  }));
} catch (e) {
  out({ ok: false, code: 'USAGE', message: e.message }, 2);
}
const keyMode = Boolean(args['public-key']);
if (!args.bundle || (!keyMode && !(args.identity || args['identity-regex']) )) {
  out({ ok: false, code: 'USAGE', message: 'need --bundle and --identity/--identity-regex or --public-key' }, 2);
}

try {
  const bundle = bundleFromJSON(JSON.parse(readFileSync(args.bundle, 'utf8')));
  const rootJSON = args['trusted-root'] ? JSON.parse(readFileSync(args['trusted-root'], 'utf8')) : EMPTY_ROOT;
  const root = TrustedRoot.fromJSON(rootJSON);
  let keys;
  let options = {};
  let policy;
  if (keyMode) {
    const hint = bundle.verificationMaterial?.content?.$case === 'publicKey'
      ? bundle.verificationMaterial.content.publicKey.hint : undefined;
    if (!hint) out({ ok: false, code: 'BUNDLE', message: 'bundle has no publicKey hint' }, 1);
    const der = createPublicKey(readFileSync(args['public-key'], 'utf8')).export({ type: 'spki', format: 'der' });
    keys = { [hint]: { rawBytes: der } };
    // A key bundle has no certificate (so no SCT) and, from `attest sign --key`, no log entry.
    options = { tlogThreshold: 0, ctlogThreshold: 0, timestampThreshold: 0 };
  } else {
    const san = args['identity-regex'] ? new RegExp(args['identity-regex']) : args.identity;
    policy = { subjectAlternativeName: san, extensions: args.issuer ? { issuer: args.issuer } : undefined };
  }
  const verifier = new Verifier(toTrustMaterial(root, keys), options);
  const signer = verifier.verify(toSignedEntity(bundle), policy);
  const id = signer.identity ?? {};
  out({ ok: true, subjectAlternativeName: id.subjectAlternativeName ?? null,
        issuer: id.extensions?.issuer ?? null, mediaType: bundle.mediaType }, 0);
} catch (e) {
  out({ ok: false, code: e.code ?? e.name ?? 'ERROR', message: String(e.message ?? e) }, 1);
}
