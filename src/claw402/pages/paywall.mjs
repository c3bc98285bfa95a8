// Print the EVM page of @x402/paywall (the package's own generateHtml) for a sample offer;
// claw402/pages/paywall.py keeps the page and writes each offer's window.x402 itself.
// Usage: node paywall.mjs NODE_MODULES
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const [nodeModules] = process.argv.slice(2);
// The EVM handler alone: the package's index also loads its Solana and Algorand handlers.
const entry = join(nodeModules, "@x402", "paywall", "dist", "esm", "evm", "index.js");
const { evmPaywall } = await import(pathToFileURL(entry).href);
const requirement = {
  scheme: "exact", network: "eip155:84532", amount: "1", asset: "0x0", payTo: "0x0",
  maxTimeoutSeconds: 60,
};
process.stdout.write(evmPaywall.generateHtml(requirement, { x402Version: 2, accepts: [requirement] }, {}));
