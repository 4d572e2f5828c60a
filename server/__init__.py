"""The server: streams TDengine rows into live Perspective tables over a WebSocket."""
