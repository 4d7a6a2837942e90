print("myorg-gateway")
