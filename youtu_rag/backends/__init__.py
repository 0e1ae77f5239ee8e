"""Everything that turns texts into vectors behind one protocol: the local core, a
``youtu-rag serve`` server over HTTP, and the Tencent Cloud API, built from one settings model."""
