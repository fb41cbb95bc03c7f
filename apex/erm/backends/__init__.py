"""The ERM backends: each module registers its backends (apex.erm.registry); the registry imports them all."""
