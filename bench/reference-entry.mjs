// Bundled by bench/run.py with esbuild into an IIFE: the reference transport for the same-page comparison.
export { OpenAIRealtimeWebSocket } from "@openai/agents-realtime";
