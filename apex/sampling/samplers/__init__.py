"""The samplers: each module registers one (apex.sampling.registry); the registry imports them all."""
