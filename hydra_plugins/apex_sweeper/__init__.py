"""apex's Hydra sweeper (Hydra loads sweepers and launchers only from the `hydra_plugins` namespace package)."""
