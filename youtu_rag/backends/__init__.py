"""Everything that turns texts into vectors behind one protocol: the local core, a
``youtu-rag serve`` server over HTTP, and the Tencent Cloud API, built from one settings model.

Second layer: imports only :mod:`youtu_rag.model`. ``protocol`` says which backend a model
string means (and describes it for the store's guard), ``settings`` declares every option once
and builds every embedder, ``http`` and ``tencent_cloud`` are the remote embedders.
"""
