// 402claw edge payer proof: src/claw402/limits/signer.py `proven_payer` at the edge. The limits
// step runs before the paywall verifies anything, so the wallet a payment header names is only
// a claim; counted as the caller, a forged header naming someone else's wallet would spend that
// wallet's rate budget. A wallet counts only when the header's own signature recovers to it:
//
// - `exact`: the EIP-3009 TransferWithAuthorization signature, over the token domain the payer
//   `accepted` (extra.name, extra.version, the network's chain, the asset), recovers to
//   `authorization.from`, and the authorization has not expired;
// - `batch-settlement`: the voucher's EIP-712 signature recovers to the channel's authorized
//   signer (`payerAuthorizer`, else `payer`), and that signer is the caller.
//
// Anything else (v1 headers, smart-wallet signatures, an unreadable header) proves nothing:
// null, and the client address is the caller. secp256k1 recovery and keccak-256 come from
// @noble/curves and @noble/hashes (cloudflare/noble.py ships them as flat modules).

import { secp256k1 } from "./noble-curves-secp256k1.js";
import { keccak_256 } from "./noble-hashes-sha3.js";
import { VOUCHER_DOMAIN } from "./vouchers.js";

const MAX_HEADER_BYTES = 8192; // payments.codec.MAX_HEADER_BYTES
const ADDRESS = /^0x[0-9a-fA-F]{40}$/;
const UINT = /^[0-9]{1,78}$/;
const BYTES32 = /^0x[0-9a-fA-F]{64}$/;
const SIGNATURE = /^0x[0-9a-fA-F]{130}$/; // 65 bytes; a longer one is the chain's to check
const NETWORK = /^eip155:([0-9]+)$/;
const ZERO = "0x" + "00".repeat(20);
const HALF_N = secp256k1.CURVE.n >> 1n;
const TWO_256 = 1n << 256n;
const utf8 = new TextEncoder();

const keccak = (bytes) => keccak_256(bytes);
const text = (s) => keccak(utf8.encode(s));

function hex(value) {
  const clean = value.slice(2);
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(clean.substr(i * 2, 2), 16);
  return out;
}

function word(value) { // a uint256 (BigInt) as 32 big-endian bytes
  if (value < 0n || value >= TWO_256) throw new RangeError("not a uint256");
  return hex("0x" + value.toString(16).padStart(64, "0"));
}

const addressWord = (address) => word(BigInt(address));

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

const DOMAIN_TYPEHASH = text("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
const TRANSFER_TYPEHASH = text("TransferWithAuthorization(address from,address to,uint256 value," +
  "uint256 validAfter,uint256 validBefore,bytes32 nonce)");
const VOUCHER_TYPEHASH = text("Voucher(bytes32 channelId,uint128 maxClaimableAmount)");

export function domainSeparator(name, version, chainId, contract) {
  if (!ADDRESS.test(contract)) throw new TypeError("verifyingContract is not an address");
  return keccak(concat(DOMAIN_TYPEHASH, text(name), text(version), word(chainId), addressWord(contract)));
}

// The lower-case address of a canonical 65-byte low-s signature over `digest`, else null.
export function recover(digest, signature) {
  if (typeof signature !== "string" || !SIGNATURE.test(signature)) return null;
  const raw = hex(signature);
  const v = raw[64];
  if (v !== 27 && v !== 28) return null;
  const s = BigInt("0x" + signature.slice(66, 130));
  if (s === 0n || s > HALF_N) return null;
  try {
    const point = secp256k1.Signature.fromCompact(raw.subarray(0, 64)).addRecoveryBit(v - 27)
      .recoverPublicKey(digest);
    const address = keccak(point.toRawBytes(false).subarray(1)).subarray(12);
    return "0x" + Array.from(address, (b) => b.toString(16).padStart(2, "0")).join("");
  } catch {
    return null; // r out of range, no point on the curve: not a signature
  }
}

const typed = (separator, body) => keccak(concat(Uint8Array.of(0x19, 0x01), separator, body));

function chainOf(network) {
  const match = typeof network === "string" ? NETWORK.exec(network) : null;
  if (!match) throw new TypeError("not an eip155 network");
  return BigInt(match[1]);
}

function authorizationSigner(accepted, inner, now) {
  const auth = inner.authorization;
  const ok = auth && typeof auth === "object" && ADDRESS.test(auth.from) && ADDRESS.test(auth.to)
    && UINT.test(auth.value) && UINT.test(auth.validAfter) && UINT.test(auth.validBefore)
    && BYTES32.test(auth.nonce);
  if (!ok) return null;
  if (BigInt(auth.validBefore) <= BigInt(Math.floor(now))) return null; // spent or expired
  const extra = accepted.extra;
  if (!extra || typeof extra !== "object" || extra.name == null || extra.version == null) return null;
  const separator = domainSeparator(String(extra.name), String(extra.version), chainOf(accepted.network),
    String(accepted.asset));
  const body = keccak(concat(TRANSFER_TYPEHASH, addressWord(auth.from), addressWord(auth.to),
    word(BigInt(auth.value)), word(BigInt(auth.validAfter)), word(BigInt(auth.validBefore)), hex(auth.nonce)));
  const claimed = auth.from.toLowerCase();
  return recover(typed(separator, body), inner.signature) === claimed ? claimed : null;
}

export function voucherSigner(chainId, channelId, amount, signature) {
  if (VOUCHER_DOMAIN === null || !BYTES32.test(channelId) || !UINT.test(amount)) return null;
  const value = BigInt(amount);
  if (value >= 1n << 128n) return null;
  const separator = domainSeparator(VOUCHER_DOMAIN.name, VOUCHER_DOMAIN.version, chainId,
    VOUCHER_DOMAIN.verifyingContract);
  return recover(typed(separator, keccak(concat(VOUCHER_TYPEHASH, hex(channelId), word(value)))), signature);
}

function channelSigner(accepted, inner) {
  const config = inner.channelConfig;
  const voucher = inner.voucher;
  if (!config || typeof config !== "object" || !voucher || typeof voucher !== "object") return null;
  if (!ADDRESS.test(config.payer) || !ADDRESS.test(config.payerAuthorizer)) return null;
  const authorizer = config.payerAuthorizer.toLowerCase();
  const wanted = authorizer === ZERO ? config.payer.toLowerCase() : authorizer;
  const found = voucherSigner(chainOf(accepted.network), voucher.channelId, voucher.maxClaimableAmount,
    voucher.signature);
  return found === wanted ? wanted : null;
}

// `w:<address>` (lower case) of the wallet whose signature the header carries, or null.
export function provenPayer(header, now = Date.now() / 1000) {
  if (typeof header !== "string" || header.length > MAX_HEADER_BYTES) return null;
  try {
    const data = JSON.parse(atob(header.trim()));
    if (!data || typeof data !== "object" || data.x402Version !== 2) return null; // v1: no domain
    const { accepted, payload: inner } = data;
    if (!accepted || typeof accepted !== "object" || !inner || typeof inner !== "object") return null;
    const signer = "authorization" in inner ? authorizationSigner(accepted, inner, now) : channelSigner(accepted, inner);
    return signer === null ? null : "w:" + signer;
  } catch {
    return null;
  }
}
