// Pay a URL with the official x402 JavaScript client (@x402/fetch + @x402/evm), unchanged.
// Usage: node pay.mjs URL PRIVATE_KEY NETWORK ASSET MAX_ATOMIC
// Prints one JSON line: {status, body, paymentResponse}.
import { decodePaymentResponseHeader, wrapFetchWithPayment, x402Client } from "@x402/fetch";
import { registerExactEvmScheme } from "@x402/evm/exact/client";
import { privateKeyToAccount } from "viem/accounts";

const [url, privateKey, network, asset, maxAtomic] = process.argv.slice(2);
const client = new x402Client();
registerExactEvmScheme(client, { signer: privateKeyToAccount(privateKey), networks: [network] });
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
