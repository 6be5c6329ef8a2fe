"""Local Seldon serving: the model class, drift detector and feedback store (serving venv), the router and the controller.

Nothing is imported here: ``model``, ``drift`` and ``feedback`` run in the serving environment, which
lacks the main environment's libraries (aiohttp, prometheus-client, …) that ``router`` and
``controller`` need. Import the submodule you use.
"""
