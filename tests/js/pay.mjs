// Pay a URL with the official x402 JavaScript client (@x402/fetch + @x402/evm), unchanged.
// Usage: node pay.mjs URL PRIVATE_KEY NETWORK ASSET MAX_ATOMIC [SCHEME [CHANNELS_DIR]]
// SCHEME: exact (default) or batch-settlement (channel state kept in CHANNELS_DIR, so the
// next run signs a voucher instead of depositing again).
// Prints one JSON line: {status, body, paymentResponse}.
import { decodePaymentResponseHeader, wrapFetchWithPayment, x402Client } from "@x402/fetch";
import { BatchSettlementEvmScheme } from "@x402/evm/batch-settlement/client";
import { FileClientChannelStorage } from "@x402/evm/batch-settlement/client/file-storage";
import { registerExactEvmScheme } from "@x402/evm/exact/client";
import { privateKeyToAccount } from "viem/accounts";

const [url, privateKey, network, asset, maxAtomic, scheme = "exact", channelsDir] =
  process.argv.slice(2);
const signer = privateKeyToAccount(privateKey);
const client = new x402Client();
if (scheme === "exact") {
  registerExactEvmScheme(client, { signer, networks: [network] });
} else {
  const storage = new FileClientChannelStorage({ directory: channelsDir });
  client.register(network, new BatchSettlementEvmScheme(signer, { storage }));
}
client.setSpendControls({
  allowedAssets: [{ network, asset, maxAmountPerPayment: maxAtomic }],
});
const fetchWithPayment = wrapFetchWithPayment(fetch, client);
const response = await fetchWithPayment(url, { method: "GET" });
const header = response.headers.get("PAYMENT-RESPONSE");
console.log(
  JSON.stringify({
    status: response.status,
    body: await response.json(),
    paymentResponse: header ? decodePaymentResponseHeader(header) : null,
  }),
);
